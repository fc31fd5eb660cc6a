import { createClient, LibsqlError, type Client, type InValue, type ResultSet, type Value } from '@libsql/client';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/test-server.js';

/**
 * `@libsql/client` over HTTP (Hrana 2 on `/v2/pipeline`) against a real server: the official client is
 * the oracle for wire compatibility (spec §4.4, §4.6, §4.7).
 */

let srv: TestServer;
let client: Client;
const extraClients: Client[] = [];

function newClient(): Client {
  const c = createClient({ url: srv.url, intMode: 'bigint' });
  extraClients.push(c);
  return c;
}

beforeAll(async () => {
  srv = await startTestServer();
  client = createClient({ url: srv.url, intMode: 'bigint' });
});

afterAll(async () => {
  client?.close();
  for (const c of extraClients) c.close();
  await srv?.close();
});

/** The error a promise rejects with; fails the test if it resolves or rejects with something else. */
async function libsqlError(p: Promise<unknown>): Promise<LibsqlError> {
  const err: unknown = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LibsqlError);
  return err as LibsqlError;
}

function firstRow(rs: ResultSet): Value[] {
  const row = rs.rows[0];
  expect(row).toBeDefined();
  return Array.from(row ?? []);
}

async function scalar(sql: string, args: InValue[] = []): Promise<Value> {
  return firstRow(await client.execute({ sql, args }))[0] ?? null;
}

describe('arguments', () => {
  it('binds positional `?` and numbered `?1`/`?2` arguments', async () => {
    expect(firstRow(await client.execute({ sql: 'SELECT ?, ?', args: [1n, 'two'] }))).toEqual([1n, 'two']);
    const rs = await client.execute({ sql: 'SELECT ?2 AS b, ?1 AS a, ?2 AS b2', args: ['first', 'second'] });
    expect(rs.columns).toEqual(['b', 'a', 'b2']);
    expect(firstRow(rs)).toEqual(['second', 'first', 'second']);
  });

  it('binds `:a`, `@a` and `$a` by bare name and by full name', async () => {
    const bare = await client.execute({ sql: 'SELECT :a AS x, @b AS y, $c AS z', args: { a: 1n, b: 'bee', c: 2.5 } });
    expect(firstRow(bare)).toEqual([1n, 'bee', 2.5]);
    expect(bare.rows[0]?.x).toBe(1n);
    expect(bare.rows[0]?.y).toBe('bee');
    const full = await client.execute({ sql: 'SELECT :a, @b, $c', args: { ':a': 10n, '@b': 20n, $c: 30n } });
    expect(firstRow(full)).toEqual([10n, 20n, 30n]);
    const reused = await client.execute({ sql: 'SELECT :v + :v', args: { v: 21n } });
    expect(firstRow(reused)).toEqual([42n]);
  });
});

describe('values', () => {
  it('round-trips every value type, keeping SQLite storage classes', async () => {
    await client.execute('CREATE TABLE vals (id INTEGER PRIMARY KEY, v)');
    const blobBytes = new Uint8Array([0, 1, 2, 127, 128, 254, 255]);
    const abuf = new Uint8Array([9, 8, 7]).buffer;
    const cases: { in: InValue; type: string }[] = [
      { in: null, type: 'null' },
      { in: 0n, type: 'integer' },
      { in: -1n, type: 'integer' },
      { in: 9223372036854775807n, type: 'integer' },
      { in: -9223372036854775808n, type: 'integer' },
      { in: 1.0, type: 'real' },
      { in: -0.5, type: 'real' },
      { in: 1.5e300, type: 'real' },
      { in: '', type: 'text' },
      { in: 'héllo wörld — 世界 🎉\u0000tail', type: 'text' },
      { in: blobBytes, type: 'blob' },
      { in: abuf, type: 'blob' },
      { in: new Uint8Array(0), type: 'blob' },
    ];
    for (const [i, c] of cases.entries()) {
      await client.execute({ sql: 'INSERT INTO vals (id, v) VALUES (?, ?)', args: [BigInt(i), c.in] });
    }
    const rs = await client.execute('SELECT v, typeof(v) FROM vals ORDER BY id');
    expect(rs.rows.map((r) => r[1])).toEqual(cases.map((c) => c.type));
    const got = rs.rows.map((r) => r[0]);
    expect(got.slice(0, 5)).toEqual([null, 0n, -1n, 9223372036854775807n, -9223372036854775808n]);
    // 1.0 must come back as a float (number), not as the integer 1n
    expect(typeof got[5]).toBe('number');
    expect(got.slice(5, 8)).toEqual([1, -0.5, 1.5e300]);
    expect(got.slice(8, 10)).toEqual(['', 'héllo wörld — 世界 🎉\u0000tail']);
    for (const [idx, expected] of [[10, blobBytes], [11, new Uint8Array(abuf)], [12, new Uint8Array(0)]] as const) {
      const v = got[idx];
      expect(v).toBeInstanceOf(ArrayBuffer);
      expect(new Uint8Array(v as ArrayBuffer)).toEqual(expected);
    }
  });

  it('computes with extreme integers exactly on the server', async () => {
    expect(await scalar('SELECT ? - 1', [-9223372036854775807n])).toBe(-9223372036854775808n);
    expect(await scalar('SELECT typeof(?)', [9223372036854775807n])).toBe('integer');
    expect(await scalar('SELECT typeof(1.0)')).toBe('real');
    expect(await scalar('SELECT length(?)', ['é🎉'])).toBe(2n);
  });
});

describe('result metadata', () => {
  it('reports lastInsertRowid, rowsAffected, columns and columnTypes', async () => {
    await client.execute('CREATE TABLE meta (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, score REAL)');
    const ins = await client.execute({ sql: 'INSERT INTO meta (name, score) VALUES (?, ?)', args: ['a', 1.5] });
    expect(ins.rowsAffected).toBe(1);
    expect(ins.lastInsertRowid).toBe(1n);
    expect(ins.columns).toEqual([]);
    const big = await client.execute({ sql: 'INSERT INTO meta (id, name, score) VALUES (?, ?, ?)', args: [9007199254740993n, 'b', 2] });
    expect(big.lastInsertRowid).toBe(9007199254740993n);
    const multi = await client.execute("INSERT INTO meta (name) VALUES ('c'), ('d'), ('e')");
    expect(multi.rowsAffected).toBe(3);
    expect(multi.lastInsertRowid).toBe(9007199254740996n);
    const upd = await client.execute("UPDATE meta SET score = 0 WHERE name IN ('c', 'd')");
    expect(upd.rowsAffected).toBe(2);
    expect(upd.lastInsertRowid).toBeUndefined();
    const sel = await client.execute('SELECT id, name, score, score * 2 AS dbl FROM meta ORDER BY id LIMIT 1');
    expect(sel.columns).toEqual(['id', 'name', 'score', 'dbl']);
    expect(sel.columnTypes).toEqual(['INTEGER', 'TEXT', 'REAL', '']);
    expect(sel.rowsAffected).toBe(0);
    expect(sel.lastInsertRowid).toBeUndefined();
    expect(firstRow(sel)).toEqual([1n, 'a', 1.5, 3]);
    const del = await client.execute('DELETE FROM meta');
    expect(del.rowsAffected).toBe(5);
  });
});

describe('batches', () => {
  it('commits a successful write batch and returns one result per statement', async () => {
    await client.execute('CREATE TABLE b_ok (x INTEGER UNIQUE)');
    const results = await client.batch(
      [{ sql: 'INSERT INTO b_ok VALUES (?)', args: [1n] }, 'INSERT INTO b_ok VALUES (2)', 'SELECT sum(x) FROM b_ok'],
      'write',
    );
    expect(results).toHaveLength(3);
    expect(results[0]?.lastInsertRowid).toBe(1n);
    expect(firstRow(results[2] as ResultSet)).toEqual([3n]);
  });

  it('is atomic: a failing later statement leaves nothing committed', async () => {
    await client.execute('CREATE TABLE b_atomic (x INTEGER UNIQUE)');
    const err = await libsqlError(
      client.batch(['INSERT INTO b_atomic VALUES (1)', 'INSERT INTO b_atomic VALUES (2)', 'INSERT INTO b_atomic VALUES (1)', 'INSERT INTO b_atomic VALUES (3)'], 'write'),
    );
    expect(err.code).toBe('SQLITE_CONSTRAINT');
    expect(err.message).toMatch(/UNIQUE constraint failed/);
    expect(await scalar('SELECT count(*) FROM b_atomic')).toBe(0n);
    // the namespace's write lock was released: a new write goes through
    await client.execute('INSERT INTO b_atomic VALUES (7)');
    expect(await scalar('SELECT count(*) FROM b_atomic')).toBe(1n);
  });
});

describe('interactive transactions', () => {
  beforeAll(async () => {
    await client.execute('CREATE TABLE tx (v TEXT)');
  });

  it('commits a write transaction; its writes are invisible outside until COMMIT', async () => {
    const tx = await client.transaction('write');
    await tx.execute({ sql: 'INSERT INTO tx VALUES (?)', args: ['committed'] });
    expect(firstRow(await tx.execute("SELECT count(*) FROM tx WHERE v = 'committed'"))).toEqual([1n]);
    expect(await scalar("SELECT count(*) FROM tx WHERE v = 'committed'")).toBe(0n);
    await tx.commit();
    expect(tx.closed).toBe(true);
    expect(await scalar("SELECT count(*) FROM tx WHERE v = 'committed'")).toBe(1n);
  });

  it('rolls back a write transaction', async () => {
    const tx = await client.transaction('write');
    await tx.execute("INSERT INTO tx VALUES ('rolled back')");
    expect(firstRow(await tx.execute("SELECT count(*) FROM tx WHERE v = 'rolled back'"))).toEqual([1n]);
    await tx.rollback();
    expect(await scalar("SELECT count(*) FROM tx WHERE v = 'rolled back'")).toBe(0n);
  });

  it("runs reads in a 'read' transaction (BEGIN TRANSACTION READONLY) and refuses writes there", async () => {
    const tx = await client.transaction('read');
    const rs = await tx.execute("SELECT count(*) FROM tx WHERE v = 'committed'");
    expect(firstRow(rs)).toEqual([1n]);
    const err = await libsqlError(tx.execute("INSERT INTO tx VALUES ('from read tx')"));
    expect(err.code).toBe('SQLITE_READONLY');
    await tx.rollback();
    expect(await scalar("SELECT count(*) FROM tx WHERE v = 'from read tx'")).toBe(0n);
  });

  it("runs a 'deferred' transaction that reads, then writes", async () => {
    const tx = await client.transaction('deferred');
    expect(firstRow(await tx.execute('SELECT count(*) FROM tx'))).toEqual([1n]);
    await tx.execute("INSERT INTO tx VALUES ('deferred')");
    await tx.commit();
    expect(await scalar("SELECT count(*) FROM tx WHERE v = 'deferred'")).toBe(1n);
  });

  it('serializes two concurrent write transactions from two clients; both commit', async () => {
    await client.execute('CREATE TABLE conc (who TEXT, n INTEGER)');
    const c1 = newClient();
    const c2 = newClient();
    const tx1 = await c1.transaction('write');
    await tx1.execute("INSERT INTO conc VALUES ('one', 1)");
    const tx2 = await c2.transaction('write');
    let secondDone = false;
    // BEGIN IMMEDIATE + INSERT of tx2 must wait for tx1's write lock
    const second = tx2.execute("INSERT INTO conc VALUES ('two', 1)").then((rs) => {
      secondDone = true;
      return rs;
    });
    second.catch(() => undefined);
    // wait until tx2's stream exists on the server (its connection is open), so it really is queued
    const db = await srv.server.context.namespaces.get('default');
    await vi.waitFor(() => expect(db.openConnections).toBe(2), { timeout: 5000, interval: 10 });
    await tx1.execute("INSERT INTO conc VALUES ('one', 2)");
    expect(firstRow(await tx1.execute('SELECT count(*) FROM conc'))).toEqual([2n]);
    expect(secondDone).toBe(false);
    await tx1.commit();
    const rs2 = await second;
    expect(rs2.rowsAffected).toBe(1);
    // tx2 started after tx1 committed, so it sees tx1's rows
    expect(firstRow(await tx2.execute('SELECT count(*) FROM conc'))).toEqual([3n]);
    await tx2.execute("INSERT INTO conc VALUES ('two', 2)");
    await tx2.commit();
    const all = await client.execute('SELECT who, n FROM conc ORDER BY who, n');
    expect(all.rows.map((r) => Array.from(r))).toEqual([
      ['one', 1n],
      ['one', 2n],
      ['two', 1n],
      ['two', 2n],
    ]);
  });
});

describe('executeMultiple', () => {
  it('runs several statements including a trigger', async () => {
    await client.executeMultiple(`
      CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);
      CREATE TABLE audit (item_id INTEGER, action TEXT);
      CREATE TRIGGER items_ai AFTER INSERT ON items BEGIN
        INSERT INTO audit VALUES (new.id, 'insert; with semicolon');
      END;
      INSERT INTO items (name) VALUES ('a');
      INSERT INTO items (name) VALUES ('b');
      -- a trailing comment
    `);
    const rs = await client.execute('SELECT item_id, action FROM audit ORDER BY item_id');
    expect(rs.rows.map((r) => Array.from(r))).toEqual([
      [1n, 'insert; with semicolon'],
      [2n, 'insert; with semicolon'],
    ]);
  });

  it('stops at the first failing statement and reports its code', async () => {
    const err = await libsqlError(client.executeMultiple("CREATE TABLE em (x UNIQUE); INSERT INTO em VALUES (1); INSERT INTO em VALUES (1); INSERT INTO em VALUES (2);"));
    expect(err.code).toBe('SQLITE_CONSTRAINT');
    expect(firstRow(await client.execute('SELECT count(*), max(x) FROM em'))).toEqual([1n, 1n]);
  });
});

describe('error codes', () => {
  beforeAll(async () => {
    await client.execute('CREATE TABLE uniq (x INTEGER UNIQUE)');
    await client.execute('INSERT INTO uniq VALUES (1)');
  });

  it('SQLITE_CONSTRAINT for a UNIQUE violation', async () => {
    const err = await libsqlError(client.execute('INSERT INTO uniq VALUES (1)'));
    expect(err.code).toBe('SQLITE_CONSTRAINT');
    expect(err.message).toMatch(/UNIQUE constraint failed: uniq\.x/);
  });

  it('SQL_PARSE_ERROR for a syntax error', async () => {
    const err = await libsqlError(client.execute('SELEC 1'));
    expect(err.code).toBe('SQL_PARSE_ERROR');
  });

  it('SQLITE_UNKNOWN for a missing table', async () => {
    const err = await libsqlError(client.execute('SELECT * FROM no_such_table'));
    expect(err.code).toBe('SQLITE_UNKNOWN');
    expect(err.message).toMatch(/no such table: no_such_table/);
  });

  it('ARGS_INVALID for missing or surplus arguments', async () => {
    expect((await libsqlError(client.execute({ sql: 'SELECT ?', args: [] }))).code).toBe('ARGS_INVALID');
    expect((await libsqlError(client.execute({ sql: 'SELECT :a', args: { b: 1n } }))).code).toBe('ARGS_INVALID');
    expect((await libsqlError(client.execute({ sql: 'SELECT ?', args: [1n, 2n] }))).code).toBe('ARGS_INVALID');
  });

  it('the server keeps serving after errors', async () => {
    expect(await scalar('SELECT 1')).toBe(1n);
  });
});

describe('large results', () => {
  it('returns all 20 000 rows of a result', async () => {
    await client.execute('CREATE TABLE big (n INTEGER, pad TEXT)');
    await client.execute(
      "INSERT INTO big WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) SELECT x, 'row-' || x FROM c",
    );
    const rs = await client.execute('SELECT n, pad FROM big ORDER BY n');
    expect(rs.rows).toHaveLength(20_000);
    let sum = 0n;
    for (const [i, row] of rs.rows.entries()) {
      const n = row[0];
      expect(typeof n).toBe('bigint');
      sum += n as bigint;
      if (i % 4999 === 0) expect(row[1]).toBe(`row-${i + 1}`);
    }
    expect(sum).toBe(200_010_000n);
    expect(rs.rows[19_999]?.[0]).toBe(20_000n);
  });
});

describe('migrate and PRAGMA foreign_keys', () => {
  it('reads PRAGMA foreign_keys as a one-row integer result', async () => {
    const rs = await client.execute('PRAGMA foreign_keys');
    expect(rs.columns).toEqual(['foreign_keys']);
    expect(rs.rows).toHaveLength(1);
    expect([0n, 1n]).toContain(rs.rows[0]?.[0]);
  });

  it('client.migrate runs its statements with foreign keys off, atomically', async () => {
    expect(typeof client.migrate).toBe('function');
    await client.executeMultiple(
      'CREATE TABLE parent (id INTEGER PRIMARY KEY); CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id));',
    );
    // with enforcement on, an orphan is refused
    const refused = await libsqlError(client.executeMultiple('PRAGMA foreign_keys = ON; INSERT INTO child VALUES (1, 99);'));
    expect(refused.code).toBe('SQLITE_CONSTRAINT');
    const results = await client.migrate(['PRAGMA foreign_keys', 'INSERT INTO child VALUES (1, 99)', 'SELECT count(*) FROM child']);
    expect(results).toHaveLength(3);
    expect(firstRow(results[0] as ResultSet)).toEqual([0n]);
    expect(results[1]?.rowsAffected).toBe(1);
    expect(firstRow(results[2] as ResultSet)).toEqual([1n]);
    expect(await scalar('SELECT parent_id FROM child WHERE id = 1')).toBe(99n);
    // a failing migration commits nothing
    const err = await libsqlError(client.migrate(['INSERT INTO child VALUES (2, 98)', 'INSERT INTO child VALUES (1, 97)']));
    expect(err.code).toBe('SQLITE_CONSTRAINT');
    expect(await scalar('SELECT count(*) FROM child')).toBe(1n);
  });
});
