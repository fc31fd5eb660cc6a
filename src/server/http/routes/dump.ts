import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { SqlConnection } from '../../../engine/connection.js';
import type { SqlValue } from '../../../engine/values.js';
import type { ServerContext } from '../../context.js';
import { authenticateFirst, sessionOf } from '../early-auth.js';
import { quoteIdent, sqlLiteral, textLiteral } from './dump-sql.js';

/**
 * `GET /dump` (spec §4.9): the database as a SQL script in the style of the SQLite shell's `.dump`,
 * read from one snapshot (one read transaction on one connection) and streamed table by table.
 * Rows are read in pages (keyset pagination, never OFFSET unless a table has no usable key), so
 * memory stays bounded and the event loop is never blocked for a whole table.
 */

const TEXT = 'text/plain; charset=utf-8';
const READ = { allowWrite: false, maxResponseBytes: Infinity };
/** Rough size of the SQL text produced per page; the page's row count adapts to the rows' size. */
const PAGE_TARGET_CHARS = 1 << 20;
const PAGE_MAX_ROWS = 10_000;
const PAGE_FIRST_ROWS = 100;

interface SchemaTable {
  name: string;
  sql: string;
}

interface Schema {
  tables: SchemaTable[];
  /** CREATE INDEX / TRIGGER / VIEW statements, written after all table data. */
  others: string[];
}

/** How one table's rows are read page by page. */
interface TablePlan {
  /** `INSERT INTO t[(rowid,…)] VALUES(` */
  insertPrefix: string;
  /** Query text and arguments for the page after `last` (null: the first page). */
  page(last: SqlValue[] | null, offset: number, limit: number): { sql: string; args: SqlValue[] };
  /** Number of leading selected values that are keys only, not written. */
  skip: number;
}

async function rows(conn: SqlConnection, sql: string, args: SqlValue[] = []): Promise<SqlValue[][]> {
  return (await conn.execute(sql, { positional: args, named: new Map() }, READ)).rows;
}

const str = (v: SqlValue | undefined): string => (typeof v === 'string' ? v : '');

/** `?preserve_row_ids=true|false`, parsed as sqld (axum's Query) does: the flag, or the 400 text. */
function parsePreserveRowIds(query: unknown): boolean | string {
  const value = typeof query === 'object' && query !== null ? (query as Record<string, unknown>).preserve_row_ids : undefined;
  if (value === undefined) return false;
  if (Array.isArray(value)) return 'Failed to deserialize query string: duplicate field `preserve_row_ids`';
  if (value === 'true' || value === 'false') return value === 'true';
  return 'Failed to deserialize query string: provided string was not `true` or `false`';
}

/** Starts the read transaction and reads the schema (its first read fixes the snapshot). */
async function readSchema(conn: SqlConnection): Promise<Schema> {
  await conn.execute('BEGIN', { positional: [], named: new Map() }, READ);
  const tables = await rows(
    conn,
    "SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND sql IS NOT NULL ORDER BY tbl_name = 'sqlite_sequence', rowid",
  );
  const others = await rows(conn, "SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL AND type IN ('index', 'trigger', 'view') ORDER BY rowid");
  return {
    tables: tables.map(([name, sql]) => ({ name: str(name), sql: str(sql) })),
    others: others.map(([sql]) => str(sql)),
  };
}

/**
 * Columns, key and rowid handling of one table. The rowid is written (with `preserve_row_ids`) only
 * where it is not already a column: not for WITHOUT ROWID tables, not for an INTEGER PRIMARY KEY
 * (an alias of the rowid), and not when columns named rowid, _rowid_ and oid hide it.
 */
async function planTable(conn: SqlConnection, table: string, preserve: boolean): Promise<TablePlan> {
  const info = await rows(conn, "SELECT name, type, pk, hidden FROM pragma_table_xinfo(?1, 'main') ORDER BY cid", [table]);
  const listed = await rows(conn, "SELECT wr FROM pragma_table_list(?1) WHERE schema = 'main'", [table]);
  const pkIndex = await rows(conn, "SELECT name FROM pragma_index_list(?1, 'main') WHERE origin = 'pk'", [table]);
  const withoutRowid = listed[0]?.[0] === 1n;
  // Generated columns are left out: INSERT without a column list expects the others only.
  const columns = info.filter((c) => c[3] === 0n).map((c) => str(c[0]));
  const names = new Set(info.map((c) => str(c[0]).toLowerCase()));
  const rowid = withoutRowid ? undefined : ['rowid', '_rowid_', 'oid'].find((n) => !names.has(n));
  const pkColumns = info.filter((c) => c[2] !== 0n);
  const rowidIsColumn = pkColumns.length === 1 && str(pkColumns[0]![1]).toUpperCase() === 'INTEGER' && pkIndex.length === 0;
  const writeRowid = preserve && rowid !== undefined && !rowidIsColumn;

  const target = quoteIdent(table);
  const columnList = columns.map(quoteIdent).join(',');
  const insertPrefix = writeRowid ? `INSERT INTO ${target}(${rowid},${columnList}) VALUES(` : `INSERT INTO ${target} VALUES(`;

  if (rowid !== undefined) {
    const select = `SELECT ${rowid},${columnList} FROM ${target}`;
    return {
      insertPrefix,
      skip: writeRowid ? 0 : 1,
      page: (last, _offset, limit) =>
        last === null
          ? { sql: `${select} ORDER BY ${rowid} LIMIT ?1`, args: [BigInt(limit)] }
          : { sql: `${select} WHERE ${rowid} > ?1 ORDER BY ${rowid} LIMIT ?2`, args: [last[0]!, BigInt(limit)] },
    };
  }
  const select = `SELECT ${columnList} FROM ${target}`;
  const pkName = pkIndex[0]?.[0];
  if (withoutRowid && typeof pkName === 'string') {
    const keys = await rows(conn, "SELECT name, coll, desc FROM pragma_index_xinfo(?1, 'main') WHERE key = 1 ORDER BY seqno", [pkName]);
    const keyAt = keys.map((k) => columns.indexOf(str(k[0])));
    if (keyAt.every((i) => i >= 0)) return keysetPlan(insertPrefix, select, keys, keyAt);
  }
  // No usable key (all rowid names taken by columns): positions are stable within the snapshot.
  return {
    insertPrefix,
    skip: 0,
    page: (_last, offset, limit) => ({ sql: `${select} LIMIT ?1 OFFSET ?2`, args: [BigInt(limit), BigInt(offset)] }),
  };
}

/**
 * Keyset pages over a WITHOUT ROWID table's primary key, in the key's own collations and directions:
 * `k1 >= ?1 AND (k1 > ?1 OR (k1 = ?1 AND (k2 > ?2 OR …)))` (`<` for DESC parts). The leading range lets
 * SQLite seek in the primary key index instead of scanning from the start for every page.
 */
function keysetPlan(insertPrefix: string, select: string, keys: SqlValue[][], keyAt: number[]): TablePlan {
  const parts = keys.map((k, i) => ({
    expr: `${quoteIdent(str(k[0]))} COLLATE ${quoteIdent(str(k[1]) || 'BINARY')}`,
    desc: k[2] === 1n,
    param: `?${i + 1}`,
  }));
  const orderBy = parts.map((p) => `${p.expr}${p.desc ? ' DESC' : ''}`).join(', ');
  let cond = '';
  for (let i = parts.length - 1; i >= 0; i--) {
    const p = parts[i]!;
    const after = `${p.expr} ${p.desc ? '<' : '>'} ${p.param}`;
    cond = cond === '' ? after : `(${after} OR (${p.expr} = ${p.param} AND ${cond}))`;
  }
  const first = parts[0]!;
  const where = `${first.expr} ${first.desc ? '<=' : '>='} ${first.param} AND ${cond}`;
  const limitParam = `?${parts.length + 1}`;
  return {
    insertPrefix,
    skip: 0,
    page: (last, _offset, limit) =>
      last === null
        ? { sql: `${select} ORDER BY ${orderBy} LIMIT ?1`, args: [BigInt(limit)] }
        : { sql: `${select} WHERE ${where} ORDER BY ${orderBy} LIMIT ${limitParam}`, args: [...keyAt.map((i) => last[i]!), BigInt(limit)] },
  };
}

/** The INSERT statements of one table, one chunk of text per page. */
async function* tableRows(conn: SqlConnection, table: string, preserve: boolean): AsyncGenerator<string> {
  const plan = await planTable(conn, table, preserve);
  let last: SqlValue[] | null = null;
  let offset = 0;
  let limit = PAGE_FIRST_ROWS;
  for (;;) {
    const { sql, args } = plan.page(last, offset, limit);
    const page = await rows(conn, sql, args);
    let text = '';
    for (const row of page) {
      text += plan.insertPrefix;
      for (let i = plan.skip; i < row.length; i++) text += (i > plan.skip ? ',' : '') + sqlLiteral(row[i]!);
      text += ');\n';
    }
    if (text !== '') yield text;
    if (page.length < limit) return;
    last = page[page.length - 1]!;
    offset += page.length;
    limit = Math.max(1, Math.min(PAGE_MAX_ROWS, Math.floor((PAGE_TARGET_CHARS * page.length) / text.length)));
  }
}

/** The whole script; ends the read transaction after the last read. */
async function* dumpScript(conn: SqlConnection, schema: Schema, preserve: boolean): AsyncGenerator<string> {
  yield 'PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n';
  let writableSchema = false;
  for (const { name, sql } of schema.tables) {
    if (name === 'sqlite_sequence') {
      yield 'DELETE FROM sqlite_sequence;\n';
    } else if (name.startsWith('sqlite_stat')) {
      yield 'ANALYZE sqlite_schema;\n';
    } else if (name.startsWith('sqlite_')) {
      continue;
    } else if (/^CREATE\s+VIRTUAL\s+TABLE\b/i.test(sql)) {
      // The shell's way: the module recreates nothing on load, its shadow tables are dumped as tables.
      const prefix = writableSchema ? '' : 'PRAGMA writable_schema=ON;\n';
      writableSchema = true;
      const n = textLiteral(name);
      yield `${prefix}INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)VALUES('table',${n},${n},0,${textLiteral(sql)});\n`;
      continue;
    } else {
      yield `${sql.replace(/^CREATE\s+TABLE\s+/i, 'CREATE TABLE IF NOT EXISTS ')};\n`;
    }
    yield* tableRows(conn, name, preserve);
  }
  const tail = schema.others.map((sql) => `${sql};\n`);
  if (writableSchema) tail.push('PRAGMA writable_schema=OFF;\n');
  await conn.execute('COMMIT', { positional: [], named: new Map() }, READ);
  yield `${tail.join('')}COMMIT;\n`;
}

export function dumpRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get('/dump', authenticateFirst(ctx), async (request, reply) => {
    const session = sessionOf(request);
    const preserve = parsePreserveRowIds(request.query);
    if (typeof preserve === 'string') return reply.code(400).type(TEXT).send(preserve);

    const releaseSlot = await ctx.slots.acquire();
    let conn: SqlConnection | null = null;
    let done = false;
    // Runs once: when the script ends, fails, or the client goes away (even before the first read).
    const release = (): void => {
      if (done) return;
      done = true;
      try {
        conn?.close();
      } finally {
        releaseSlot();
      }
    };
    try {
      conn = session.db.connect();
      const schema = await readSchema(conn);
      const script = dumpScript(conn, schema, preserve);
      const body = Readable.from(
        (async function* (): AsyncGenerator<string> {
          try {
            yield* script;
          } finally {
            release();
          }
        })(),
      );
      body.once('close', release);
      return reply.code(200).type(TEXT).send(body);
    } catch (err) {
      release();
      throw err;
    }
  });
}
