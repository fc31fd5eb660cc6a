import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SqlConnection } from '../../src/engine/connection.js';
import type { SqlValue } from '../../src/engine/values.js';
import { textLiteral } from '../../src/server/http/routes/dump-sql.js';
import { startTestServer, tempDir, type TestServer } from '../helpers/test-server.js';

/** `GET /dump` (spec §4.9): a SQL script that rebuilds the same database, read from one snapshot. */

type Rows = SqlValue[][];
type Query = (sql: string) => Rows | Promise<Rows>;

/** A value with its storage class, exact (the sign of -0.0, every integer bit, blob bytes). */
function tagged(v: SqlValue): string {
  if (v === null) return 'null';
  if (typeof v === 'bigint') return `integer:${v}`;
  if (typeof v === 'number') return `real:${Object.is(v, -0) ? '-0' : String(v)}`;
  if (typeof v === 'string') return `text:${JSON.stringify(v)}`;
  return `blob:${Buffer.from(v).toString('hex')}`;
}

const q = (name: string): string => `"${name.replaceAll('"', '""')}"`;

/**
 * Schema (without root pages) and every table's rows as tagged values. Rowids are part of a row when
 * `rowids` is set (and the table has them); otherwise rows are compared as a sorted multiset.
 */
async function logicalDump(query: Query, rowids: boolean): Promise<unknown> {
  const schema = await query('SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name');
  const tables: Record<string, string[]> = {};
  for (const [type, name] of schema) {
    if (type !== 'table' || typeof name !== 'string') continue;
    const wr = (await query(`SELECT wr FROM pragma_table_list(${textLiteral(name)})`))[0]?.[0] === 1n;
    const withRowid = rowids && !wr;
    const rows = await query(`SELECT ${withRowid ? '_rowid_, ' : ''}* FROM ${q(name)}`);
    const lines = rows.map((r) => r.map(tagged).join(' | '));
    tables[name] = withRowid ? lines : lines.sort();
  }
  return { schema, tables };
}

function localQuery(db: Database.Database): Query {
  return (sql) => db.prepare(sql).raw(true).all() as Rows;
}

function serverQuery(conn: SqlConnection): Query {
  return async (sql) => (await conn.execute(sql, { positional: [], named: new Map() }, { allowWrite: false, maxResponseBytes: Infinity })).rows;
}

/**
 * Runs a dump script in a fresh database file (unsafe mode: the shell's virtual-table lines write
 * sqlite_schema) and reopens it, as a restore would, so the schema written that way is read.
 */
const restoreDirs: string[] = [];
afterAll(() => {
  for (const dir of restoreDirs) fs.rmSync(dir, { recursive: true, force: true });
});

function load(script: string): Database.Database {
  const dir = tempDir('libsqlctl-dump-');
  restoreDirs.push(dir);
  const file = path.join(dir, 'restored.db');
  const writer = new Database(file);
  writer.unsafeMode(true);
  writer.exec(script);
  writer.close();
  const db = new Database(file, { readonly: true });
  db.defaultSafeIntegers(true);
  return db;
}

async function getDump(srv: TestServer, query = '', headers: Record<string, string> = {}): Promise<{ status: number; type: string; text: string }> {
  const res = await fetch(`${srv.url}/dump${query}`, { headers });
  return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
}

const SETUP = [
  'CREATE TABLE vals (id INTEGER PRIMARY KEY, v)',
  'CREATE TABLE log (what TEXT, at INTEGER)',
  `CREATE TRIGGER vals_log AFTER INSERT ON vals BEGIN INSERT INTO log VALUES ('insert', new.id); END`,
  'CREATE TABLE "odd ""name"" with spaces" ("col ""q""" TEXT, "select" INTEGER, [a b] BLOB)',
  'CREATE TABLE kv (k TEXT PRIMARY KEY, v) WITHOUT ROWID',
  'CREATE TABLE wr (a TEXT COLLATE NOCASE, b INTEGER, c, PRIMARY KEY (a COLLATE BINARY, b DESC)) WITHOUT ROWID',
  'CREATE TABLE auto (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE)',
  'CREATE TABLE plain (x TEXT, y REAL)',
  'CREATE TABLE shadowed (rowid TEXT, _rowid_ TEXT, "OID" TEXT)',
  'CREATE TABLE gen (a INTEGER, b INTEGER GENERATED ALWAYS AS (a * 2) VIRTUAL, c TEXT AS (upper(d)) STORED, d TEXT)',
  'CREATE TABLE parent (id INTEGER PRIMARY KEY)',
  'CREATE TABLE child (pid INTEGER REFERENCES parent (id), n INTEGER PRIMARY KEY DESC)',
  'CREATE INDEX plain_x ON plain (x)',
  'CREATE UNIQUE INDEX "odd idx" ON "odd ""name"" with spaces" ("select") WHERE "select" > 0',
  'CREATE INDEX kv_len ON kv (length(v))',
  'CREATE VIEW big_vals AS SELECT id, v FROM vals WHERE typeof(v) = \'integer\' AND v > 1000',
  'CREATE VIEW "view of view" AS SELECT count(*) AS n FROM big_vals',
  'CREATE VIRTUAL TABLE ft USING fts5(body)',
];

const VALUES: SqlValue[] = [
  null, 0n, 1n, -1n, 9223372036854775807n, -9223372036854775808n, 4611686018427387905n,
  1.0, -0.0, 0.1, 1.5e300, -2.5e-300, 5e-324, 1.7976931348623157e308, 1.2345678901234568e20, Infinity, -Infinity,
  '', "it's", "''", 'line1\nline2\r\nend\r', 'tab\tbell\u0007', 'a\\n\\012b\n', 'nul\0in\0text', '日本語 🎉 é',
  new Uint8Array(0), new Uint8Array([0, 1, 2, 255]), randomBytes(1 << 20),
];

describe('GET /dump', () => {
  let srv: TestServer;
  let conn: SqlConnection;
  const run = (sql: string, ...args: SqlValue[]): Promise<unknown> =>
    conn.execute(sql, { positional: args, named: new Map() }, { allowWrite: true, maxResponseBytes: Infinity });

  beforeAll(async () => {
    srv = await startTestServer();
    conn = (await srv.server.context.namespaces.get('default')).connect();
    for (const sql of SETUP) await run(sql);
    await run('BEGIN');
    for (const v of VALUES) await run('INSERT INTO vals (v) VALUES (?)', v);
    await run('INSERT INTO "odd ""name"" with spaces" VALUES (\'x"y\', 1, X\'00\'), (NULL, 2, NULL), (\'z\', -3, X\'\')');
    for (let i = 0; i < 2500; i++) await run('INSERT INTO kv VALUES (?, ?)', `key-${i}`, i % 7 === 0 ? `v\n${i}` : BigInt(i));
    for (const [a, b] of [['a', 1n], ['A', 1n], ['a', 2n], ['b', 3n], ['B', -4n]] as const) await run('INSERT INTO wr VALUES (?, ?, ?)', a, b, `${a}${b}`);
    // Several pages in the key's own order (BINARY, then b DESC), with keys equal under NOCASE.
    for (let i = 0; i < 700; i++) await run('INSERT INTO wr VALUES (?, ?, ?)', `${i % 2 ? 'k' : 'K'}${i % 3}`, BigInt(1000 - i), i);
    for (let i = 0; i < 250; i++) await run('INSERT INTO shadowed VALUES (?, ?, ?)', `r${i}`, null, `o${i}`);
    for (let i = 0; i < 5; i++) await run('INSERT INTO auto (name) VALUES (?)', `n${i}`);
    await run("DELETE FROM auto WHERE name IN ('n3', 'n4')");
    for (let i = 0; i < 1200; i++) await run('INSERT INTO plain VALUES (?, ?)', `x${i % 50}`, i / 3);
    await run('DELETE FROM plain WHERE rowid % 3 = 0 OR rowid < 10');
    await run("INSERT INTO gen (a, d) VALUES (21, 'hi'), (NULL, NULL)");
    await run('INSERT INTO parent VALUES (1), (2)');
    await run('INSERT INTO child VALUES (1, 10), (2, 20)');
    await run("INSERT INTO ft VALUES ('hello world'), ('dump me')");
    await run('COMMIT');
    await run('ANALYZE');
  });

  afterAll(async () => {
    conn.close();
    await srv.close();
  });

  it('writes the shell-style script that rebuilds the same schema and values', async () => {
    const dump = await getDump(srv);
    expect(dump.status).toBe(200);
    expect(dump.type).toMatch(/^text\/plain/);
    expect(dump.text.startsWith('PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE IF NOT EXISTS vals (id INTEGER PRIMARY KEY, v);\n')).toBe(true);
    expect(dump.text.endsWith('PRAGMA writable_schema=OFF;\nCOMMIT;\n')).toBe(true);
    expect(dump.text).toContain('INSERT INTO vals VALUES(5,9223372036854775807);\n');
    expect(dump.text).toContain('INSERT INTO vals VALUES(8,1.0);\n');
    expect(dump.text).toContain('INSERT INTO vals VALUES(9,-0.0);\n');
    expect(dump.text).toContain('INSERT INTO vals VALUES(11,1.5e+300);\n');
    expect(dump.text).toContain('INSERT INTO vals VALUES(16,1e999);\n');
    expect(dump.text).toContain("INSERT INTO vals VALUES(19,'it''s');\n");
    expect(dump.text).toContain("INSERT INTO vals VALUES(26,X'');\n");
    expect(dump.text).toContain("INSERT INTO vals VALUES(27,X'000102ff');\n");
    expect(dump.text).toContain('INSERT INTO "odd ""name"" with spaces" VALUES(\'x"y\',1,X\'00\');\n');
    expect(dump.text).toContain("DELETE FROM sqlite_sequence;\nINSERT INTO sqlite_sequence VALUES('auto',5);\n");
    expect(dump.text).toContain('ANALYZE sqlite_schema;\n');
    expect(dump.text).toMatch(/INSERT INTO sqlite_schema\(type,name,tbl_name,rootpage,sql\)VALUES\('table','ft','ft',0,'CREATE VIRTUAL TABLE ft USING fts5\(body\)'\);/);
    // Tables and their rows first, then indexes, triggers and views; the trigger does not fire on load.
    expect(dump.text.indexOf('CREATE TRIGGER')).toBeGreaterThan(dump.text.lastIndexOf('INSERT INTO vals'));
    expect(dump.text.split('\n').filter((l) => l.startsWith('INSERT INTO log ')).length).toBe(VALUES.length);

    const loaded = load(dump.text);
    try {
      const expected = await logicalDump(serverQuery(conn), false);
      expect(await logicalDump(localQuery(loaded), false)).toEqual(expected);
      expect(loaded.prepare('SELECT rowid FROM ft WHERE ft MATCH ?').raw(true).all('dump')).toHaveLength(1);
    } finally {
      loaded.close();
    }
  });

  it('preserve_row_ids=true keeps rowids of rowid tables after deletes', async () => {
    const dump = await getDump(srv, '?preserve_row_ids=true');
    expect(dump.status).toBe(200);
    expect(dump.text).toContain("INSERT INTO plain(rowid,x,y) VALUES(11,'x10',3.3333333333333335);\n");
    // An INTEGER PRIMARY KEY is the rowid already; WITHOUT ROWID tables have none.
    expect(dump.text).toContain('INSERT INTO vals VALUES(1,NULL);\n');
    expect(dump.text).toContain("INSERT INTO kv VALUES('key-0',");
    expect(dump.text).toContain('INSERT INTO child(rowid,pid,n) VALUES(');
    const loaded = load(dump.text);
    try {
      expect(await logicalDump(localQuery(loaded), true)).toEqual(await logicalDump(serverQuery(conn), true));
    } finally {
      loaded.close();
    }
    // Without the flag the rowids are renumbered.
    const renumbered = load((await getDump(srv, '?preserve_row_ids=false')).text);
    try {
      expect(renumbered.prepare('SELECT min(rowid) FROM plain').pluck().get()).toBe(1n);
    } finally {
      renumbered.close();
    }
  });

  it('reads one snapshot: writes during a dump neither wait nor show up in it', async () => {
    await run('CREATE TABLE bulk (n INTEGER, pad BLOB)');
    for (let i = 0; i < 400; i++) await run('INSERT INTO bulk VALUES (?, randomblob(100000))', BigInt(i));
    const before = await logicalDump(serverQuery(conn), true);
    const res = await fetch(`${srv.url}/dump?preserve_row_ids=true`);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    await run('INSERT INTO bulk VALUES (-1, NULL)');
    await run('DELETE FROM plain');
    expect(srv.server.context.slots.inUse).toBe(1); // the dump is still reading
    const decoder = new TextDecoder();
    let text = decoder.decode(first.value, { stream: true });
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done) break;
      text += decoder.decode(chunk.value, { stream: true });
    }
    const loaded = load(text);
    try {
      expect(await logicalDump(localQuery(loaded), true)).toEqual(before);
    } finally {
      loaded.close();
    }
    await run('DROP TABLE bulk');
  });

  it('releases its connection when the client goes away mid-dump', async () => {
    await run('CREATE TABLE bulk2 (pad BLOB)');
    for (let i = 0; i < 300; i++) await run('INSERT INTO bulk2 VALUES (randomblob(100000))');
    const abort = new AbortController();
    const res = await fetch(`${srv.url}/dump`, { signal: abort.signal });
    await res.body!.getReader().read();
    expect(srv.server.context.slots.inUse).toBeGreaterThan(0);
    abort.abort();
    await expect.poll(() => srv.server.context.slots.inUse, { timeout: 5000 }).toBe(0);
    await run('DROP TABLE bulk2');
  });

  it('rejects a bad preserve_row_ids with axum’s 400 text', async () => {
    for (const query of ['?preserve_row_ids=maybe', '?preserve_row_ids=', '?preserve_row_ids=TRUE']) {
      const r = await getDump(srv, query);
      expect(r.status, query).toBe(400);
      expect(r.type).toMatch(/^text\/plain/);
      expect(r.text).toBe('Failed to deserialize query string: provided string was not `true` or `false`');
    }
    expect((await getDump(srv, '?preserve_row_ids=true&preserve_row_ids=false')).status).toBe(400);
    expect((await getDump(srv, '?other=1')).status).toBe(200);
  });

  it('formats text like the shell, with tokens that cannot clash', () => {
    expect(textLiteral('hello world')).toBe("'hello world'");
    expect(textLiteral("hello ' world")).toBe("'hello '' world'");
    expect(textLiteral('hello\nworld')).toBe("replace('hello\\nworld','\\n',char(10))");
    expect(textLiteral('hello\rworld')).toBe("replace('hello\\rworld','\\r',char(13))");
    expect(textLiteral('hello\\n\nworld')).toBe("replace('hello\\n\\012world','\\012',char(10))");
    const db = new Database(':memory:');
    try {
      for (const s of ['\\n\\012\n', '\\n\\012\\n0\\\n\r\0', 'x\\', '\\r\r\n\\n', '\0\0']) {
        expect(db.prepare(`SELECT ${textLiteral(s)}`).pluck().get()).toBe(s);
      }
    } finally {
      db.close();
    }
  });
});

describe('GET /dump access', () => {
  const credential = Buffer.from('user:secret').toString('base64');
  let srv: TestServer;

  beforeAll(async () => {
    srv = await startTestServer({ 'http-auth': `basic:${credential}`, 'enable-namespaces': true });
  });

  afterAll(() => srv.close());

  it('needs credentials (401) and an existing namespace (404)', async () => {
    const anonymous = await getDump(srv, '', { 'x-namespace': 'default' });
    expect(anonymous.status).toBe(401);
    expect(anonymous.type).toMatch(/^application\/json/);
    const ok = await getDump(srv, '', { authorization: `Basic ${credential}`, 'x-namespace': 'default' });
    expect(ok.status).toBe(200);
    expect(ok.text).toBe('PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCOMMIT;\n');
    const missing = await getDump(srv, '', { authorization: `Basic ${credential}`, 'x-namespace': 'nope' });
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.text)).toEqual({ error: 'Namespace `nope` doesn\'t exist' });
  });
});
