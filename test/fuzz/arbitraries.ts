/**
 * Generators shared by the fuzz suites: SQL from a small grammar (plus mutated and random text),
 * Hrana JSON shapes with valid structure but wrong types, missing fields, huge numbers, bounded
 * nesting and random unicode, and byte-level mutations of encoded messages.
 *
 * `full` SQL never names the sentinel table; `limited` SQL does (see test/helpers/fuzz-server.ts).
 */
import fc from 'fast-check';
import { SENTINEL } from '../helpers/fuzz-server.js';

export type Mode = 'full' | 'limited';
type Obj = Record<string, unknown>;

const FUZZ_TABLES = ['fz_a', 'fz_b', 'fz_c'];
const tablesOf = (mode: Mode): string[] => (mode === 'full' ? [...FUZZ_TABLES, 'sqlite_schema'] : [...FUZZ_TABLES, SENTINEL, SENTINEL, 'sqlite_schema']);

/** Random unicode, lone surrogates and control characters included. */
export const weird = fc.string({ unit: 'binary', maxLength: 16 });

/** Numbers at and beyond the limits of the integer types Hrana uses. */
export const hugeNumber = fc.constantFrom(2 ** 31, -(2 ** 31) - 1, 2 ** 32, 2 ** 53, -(2 ** 53), 2 ** 64, 1e308, -1e308, 0.5, -0, Number.MAX_SAFE_INTEGER);

/** A value of some JSON type, to put where another type is expected. */
export const junk: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  hugeNumber,
  weird,
  fc.constant([]),
  fc.constant({}),
  fc.constant([1, 'a', null]),
  fc.constant({ type: 'null' }),
);

/** `arb` with probability `p`, else undefined (a missing field once stringified). */
export function maybe<T>(arb: fc.Arbitrary<T>, p = 0.5): fc.Arbitrary<T | undefined> {
  const weight = Math.round(p * 100);
  return fc.oneof({ weight, arbitrary: arb }, { weight: 100 - weight, arbitrary: fc.constant(undefined) });
}

/** Mostly `good`, sometimes a value of the wrong type. */
export function orJunk<T>(good: fc.Arbitrary<T>, junkWeight = 1): fc.Arbitrary<unknown> {
  return fc.oneof({ weight: 15, arbitrary: good }, { weight: junkWeight, arbitrary: junk });
}

// ---- SQL ------------------------------------------------------------------------------------

const intLiteral = fc.oneof(
  fc.integer().map(String),
  fc.constantFrom('9223372036854775807', '-9223372036854775808', '9223372036854775808', '18446744073709551616', '0x7fffffffffffffff', '1e308', '-1e999', '0.0', '1.5'),
);
const stringLiteral = weird.map((s) => `'${s.replaceAll("'", "''")}'`);
const blobLiteral = fc.uint8Array({ maxLength: 8 }).map((b) => `X'${Buffer.from(b).toString('hex')}'`);
const placeholder = fc.constantFrom('?', '?1', '?2', '?32766', '?0', '?99999', ':a', '@b', '$c', ':x');
const size = fc.oneof(fc.integer({ min: -1, max: 2000 }).map(String), fc.constantFrom('1000000000', '2147483648', '-2147483649'));

function exprArb(tables: string[]): fc.Arbitrary<string> {
  const table = fc.constantFrom(...tables);
  const leaf = fc.oneof(intLiteral, stringLiteral, blobLiteral, placeholder, fc.constantFrom('NULL', 'x', 'y', 'rowid', 'random()', 'changes()', 'sqlite_version()'));
  const { e } = fc.letrec<{ e: string }>((tie) => ({
    e: fc.oneof(
      { depthSize: 'small', maxDepth: 3 },
      leaf,
      fc.tuple(fc.constantFrom('abs', 'length', 'hex', 'typeof', 'upper', 'quote', 'json', 'unicode', 'char', 'unhex', 'zeroblob', 'randomblob'), tie('e')).map(([f, a]) => `${f}(${a})`),
      fc.tuple(fc.constantFrom('+', '||', '/', '%', '<', '=', 'AND', '->>'), tie('e'), tie('e')).map(([op, a, b]) => `(${a} ${op} ${b})`),
      fc.tuple(tie('e'), fc.constantFrom('INTEGER', 'REAL', 'TEXT', 'BLOB')).map(([a, t]) => `CAST(${a} AS ${t})`),
      fc.tuple(fc.constantFrom('zeroblob', 'randomblob'), size).map(([f, n]) => `${f}(${n})`),
      fc.tuple(tie('e'), tie('e')).map(([a, b]) => `printf('%s %d %.3f', ${a}, ${b}, ${b})`),
      table.map((t) => `(SELECT count(*) FROM ${t})`),
    ),
  }));
  return e;
}

/**
 * Writes to the sentinel that succeed with write access (limited mode only): if any gets through,
 * the sentinel's hash changes.
 */
const sentinelWrite = fc.constantFrom(
  `DELETE FROM ${SENTINEL}`,
  `DELETE FROM ${SENTINEL} WHERE id = 1`,
  `UPDATE ${SENTINEL} SET v = 'x' WHERE id < 3`,
  `INSERT INTO ${SENTINEL} VALUES (1000, 'x', X'00')`,
  `REPLACE INTO ${SENTINEL} VALUES (1, 'x', X'00')`,
  `DROP TABLE ${SENTINEL}`,
  `ALTER TABLE ${SENTINEL} ADD COLUMN z`,
  `ALTER TABLE ${SENTINEL} RENAME TO s2`,
  `CREATE INDEX i_s ON ${SENTINEL}(v)`,
  `CREATE TRIGGER t_s AFTER INSERT ON fz_a BEGIN DELETE FROM ${SENTINEL}; END`,
  `CREATE VIEW v_s AS SELECT * FROM ${SENTINEL}`,
  `BEGIN IMMEDIATE; DELETE FROM ${SENTINEL}; COMMIT`,
);

function statementArb(mode: Mode): fc.Arbitrary<string> {
  const tables = tablesOf(mode);
  const t = fc.constantFrom(...tables);
  const e = exprArb(tables);
  const limit = fc.integer({ min: 0, max: 20 });
  return fc.oneof(
    ...(mode === 'limited' ? [{ weight: 14, arbitrary: sentinelWrite }] : []),
    { weight: 4, arbitrary: fc.array(e, { minLength: 1, maxLength: 3 }).map((es) => `SELECT ${es.join(', ')}`) },
    { weight: 3, arbitrary: fc.tuple(t, e, limit).map(([tb, w, n]) => `SELECT * FROM ${tb} WHERE ${w} LIMIT ${n}`) },
    { weight: 1, arbitrary: fc.tuple(t, limit).map(([tb, n]) => `EXPLAIN QUERY PLAN SELECT x FROM ${tb} ORDER BY 1 LIMIT ${n}`) },
    { weight: 1, arbitrary: limit.map((n) => `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${n * 5}) SELECT x FROM c`) },
    { weight: 4, arbitrary: fc.tuple(fc.constantFrom('INSERT', 'INSERT OR REPLACE', 'REPLACE', 'INSERT OR IGNORE'), t, e, e).map(([v, tb, a, b]) => `${v} INTO ${tb} VALUES (${a}, ${b})`) },
    { weight: 1, arbitrary: fc.tuple(t, t).map(([a, b]) => `INSERT INTO ${a} SELECT * FROM ${b} LIMIT 5`) },
    { weight: 2, arbitrary: fc.tuple(t, e, e).map(([tb, a, w]) => `UPDATE ${tb} SET x = ${a} WHERE ${w}`) },
    { weight: 2, arbitrary: fc.tuple(t, fc.option(e)).map(([tb, w]) => `DELETE FROM ${tb}${w === null ? '' : ` WHERE ${w}`}`) },
    {
      weight: 3,
      arbitrary: fc.tuple(t, fc.constantFrom('(x, y)', '(x INTEGER PRIMARY KEY, y TEXT UNIQUE NOT NULL)', '(x, y, CHECK (length(y) < 100))')).map(([tb, cols]) => `CREATE TABLE IF NOT EXISTS ${tb} ${cols}`),
    },
    { weight: 2, arbitrary: fc.tuple(fc.constantFrom('DROP TABLE', 'DROP TABLE IF EXISTS', 'DROP VIEW IF EXISTS', 'DROP INDEX IF EXISTS'), t).map(([d, tb]) => `${d} ${tb}`) },
    {
      weight: 2,
      arbitrary: fc.tuple(t, t, fc.nat(9)).map(([a, b, n]) =>
        [`ALTER TABLE ${a} ADD COLUMN c${n}`, `ALTER TABLE ${a} RENAME TO ${b}`, `CREATE INDEX IF NOT EXISTS i_${a} ON ${a}(x)`, `CREATE VIEW IF NOT EXISTS v_${a} AS SELECT * FROM ${b}`][n % 4]!,
      ),
    },
    { weight: 1, arbitrary: fc.tuple(t, t).map(([a, b]) => `CREATE TRIGGER IF NOT EXISTS tr_${a} AFTER INSERT ON ${a} BEGIN DELETE FROM ${b}; END`) },
    {
      weight: 4,
      arbitrary: fc.constantFrom(
        'BEGIN',
        'BEGIN IMMEDIATE',
        'BEGIN EXCLUSIVE',
        'BEGIN DEFERRED',
        'BEGIN TRANSACTION READONLY',
        'COMMIT',
        'END',
        'ROLLBACK',
        'SAVEPOINT sp',
        'RELEASE sp',
        'ROLLBACK TO sp',
      ),
    },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        'PRAGMA user_version',
        'PRAGMA user_version = 7',
        'PRAGMA foreign_keys = ON',
        'PRAGMA journal_mode = DELETE',
        'PRAGMA journal_mode',
        'PRAGMA writable_schema = 1',
        'PRAGMA integrity_check',
        'PRAGMA table_info(fz_a)',
        'VACUUM',
        'ANALYZE',
        'REINDEX',
        "ATTACH 'x' AS y",
        "ATTACH DATABASE ':memory:' AS m",
        'DETACH y',
        'CREATE TEMP TABLE tmp (x)',
        "SELECT load_extension('x')",
        "VACUUM INTO '/tmp/x.db'",
      ),
    },
  );
}

/** Character-level edits: insert, delete, duplicate, truncate. */
export function mutateText(base: fc.Arbitrary<string>): fc.Arbitrary<string> {
  const edit = fc.tuple(fc.constantFrom('insert', 'delete', 'dup', 'cut'), fc.nat(), fc.nat(8), fc.string({ unit: 'binary', minLength: 1, maxLength: 3 }));
  return fc.tuple(base, fc.array(edit, { minLength: 1, maxLength: 3 })).map(([s, edits]) => {
    let out = s;
    for (const [op, at, len, text] of edits) {
      const i = out.length === 0 ? 0 : at % (out.length + 1);
      if (op === 'insert') out = out.slice(0, i) + text + out.slice(i);
      else if (op === 'delete') out = out.slice(0, i) + out.slice(i + len);
      else if (op === 'dup') out = out.slice(0, i + len) + out.slice(i, i + len) + out.slice(i + len);
      else out = out.slice(0, i);
    }
    return out;
  });
}

export function sqlArb(mode: Mode): fc.Arbitrary<string> {
  const stmt = statementArb(mode);
  return fc.oneof(
    { weight: 8, arbitrary: stmt },
    { weight: 2, arbitrary: fc.array(stmt, { minLength: 2, maxLength: 3 }).map((s) => s.join('; ')) },
    { weight: 1, arbitrary: fc.constantFrom('', ' ', ';', '-- comment', '/* c */', ';;', 'SELECT 1;', 'SELECT 1; ', '\u0000', 'SELECT 1 -- ;') },
    { weight: 1, arbitrary: weird },
    { weight: 2, arbitrary: mutateText(stmt) },
  );
}

// ---- Hrana JSON shapes ------------------------------------------------------------------------

const i64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String);
const validBase64 = fc.uint8Array({ maxLength: 24 }).map((b) => Buffer.from(b).toString('base64'));
const validValue = fc.oneof(
  fc.constant({ type: 'null' }),
  i64.map((value) => ({ type: 'integer', value })),
  fc.double().map((value) => ({ type: 'float', value })),
  weird.map((value) => ({ type: 'text', value })),
  validBase64.map((base64) => ({ type: 'blob', base64 })),
);
const badValue = fc.oneof(
  fc.constantFrom('9223372036854775808', '-9223372036854775809', '1e3', ' 1', '0x10', '', '-', '+1', '١').map((value) => ({ type: 'integer', value })),
  fc.oneof(fc.integer(), hugeNumber).map((value) => ({ type: 'integer', value })),
  fc.constantFrom('!!!', '====', 'A', 'QQ==', 'QQ', '-_-_', 'Zm9v\n', '\u00e9').map((base64) => ({ type: 'blob', base64 })),
  junk.map((value) => ({ type: 'float', value })),
  junk.map((value) => ({ type: 'text', value })),
  fc.record({ type: orJunk(fc.constantFrom('null', 'integer', 'float', 'text', 'blob', 'NULL', 'bool', '')), value: junk, base64: junk }, { requiredKeys: [] }),
  junk,
);

const argName = fc.oneof(fc.constantFrom(':a', '@b', '$c', 'a', 'x', ':x', '?1', '1', ''), weird);

/** A `not` chain `levels` deep around `ok 0`: near the 100-level bound of batch conditions. */
export const deepCond = fc.integer({ min: 90, max: 140 }).map((levels) => {
  let c: unknown = { type: 'ok', step: 0 };
  for (let i = 1; i < levels; i++) c = { type: 'not', cond: c };
  return c;
});

/** A strict batch's conditions refer to earlier steps only (a later one is a protocol error). */
function earlierRefs(step: Obj, index: number): Obj {
  const clamp = (c: unknown): unknown => {
    if (!isObj(c)) return c;
    if (typeof c.step === 'number') return { ...c, step: c.step % index };
    if (c.cond !== undefined) return { ...c, cond: clamp(c.cond) };
    return Array.isArray(c.conds) ? { ...c, conds: c.conds.map(clamp) } : c;
  };
  if (index === 0) return { stmt: step.stmt };
  return step.condition === undefined ? step : { ...step, condition: clamp(step.condition) };
}

/** Hrana JSON shapes; `junkWeight` (0: none) is how often a field holds a value of the wrong type. */
export interface Shapes {
  value: fc.Arbitrary<unknown>;
  smallId: fc.Arbitrary<unknown>;
  replicationIndex: fc.Arbitrary<unknown>;
  cond: fc.Arbitrary<unknown>;
  stmt(mode: Mode): fc.Arbitrary<unknown>;
  batch(mode: Mode): fc.Arbitrary<unknown>;
  /** One request of an HTTP pipeline (`StreamRequest`). */
  streamRequest(mode: Mode): fc.Arbitrary<unknown>;
}

export function shapes(junkWeight: number): Shapes {
  const bad = <T>(good: fc.Arbitrary<T>, badArb: fc.Arbitrary<unknown>, weight = 15): fc.Arbitrary<unknown> =>
    junkWeight === 0 ? good : fc.oneof({ weight, arbitrary: good }, { weight: junkWeight, arbitrary: badArb });
  const j = <T>(good: fc.Arbitrary<T>, weight = 15): fc.Arbitrary<unknown> => bad(good, junk, weight);
  const value = bad(validValue, badValue, 8);
  const smallId = bad(fc.integer({ min: 0, max: 4 }), fc.oneof(fc.integer(), hugeNumber), 6);
  const replicationIndex = maybe(bad(fc.nat(), fc.oneof(fc.constantFrom('0', '18446744073709551615', '18446744073709551616', '-1', 'x'), hugeNumber, junk), 2), 0.15);
  const stepRef = bad(fc.integer({ min: 0, max: 6 }), fc.oneof(fc.constantFrom(-1, 1.5, '0', null), hugeNumber), 8);
  const cond = fc.letrec<{ c: unknown }>((tie) => ({
    c: fc.oneof(
      { depthSize: 'small', maxDepth: 4 },
      fc.record({ type: fc.constantFrom('ok', 'error'), step: stepRef }),
      fc.record({ type: fc.constant('not'), cond: tie('c') }),
      fc.record({ type: fc.constantFrom('and', 'or'), conds: j(fc.array(tie('c'), { maxLength: 3 })) }),
      fc.constant({ type: 'is_autocommit' }),
      ...(junkWeight === 0 ? [] : [fc.record({ type: orJunk(fc.constantFrom('OK', 'nand', '')), step: stepRef, cond: junk }, { requiredKeys: [] })]),
    ),
  })).c;
  const stmt = (mode: Mode): fc.Arbitrary<unknown> =>
    j(
      fc.record({
        sql: maybe(j(sqlArb(mode)), junkWeight === 0 ? 0.98 : 0.9),
        sql_id: maybe(j(smallId), junkWeight === 0 ? 0.02 : 0.08),
        args: maybe(j(fc.array(value, { maxLength: 4 })), 0.4),
        named_args: maybe(j(fc.array(j(fc.record({ name: j(argName), value }, { requiredKeys: junkWeight === 0 ? ['name', 'value'] : [] })), { maxLength: 3 })), 0.2),
        want_rows: maybe(j(fc.boolean()), 0.2),
        replication_index: replicationIndex,
      }),
      12,
    );
  const batch = (mode: Mode): fc.Arbitrary<unknown> => {
    const step = fc.record({ condition: maybe(j(cond, 12).chain((c) => (junkWeight === 0 ? fc.constant(c) : fc.oneof({ weight: 12, arbitrary: fc.constant(c) }, { weight: 1, arbitrary: deepCond }))), 0.4), stmt: stmt(mode) }, { requiredKeys: ['stmt'] });
    const steps = fc.array(j(step), { maxLength: 6 }).map((list) => (junkWeight === 0 ? list.map((step, i) => (isObj(step) ? earlierRefs(step, i) : step)) : list));
    return j(fc.record({ steps: j(steps), replication_index: replicationIndex }), 12);
  };
  const streamRequest = (mode: Mode): fc.Arbitrary<unknown> => {
    const sqlOrId =
      junkWeight === 0
        ? { sql: sqlArb(mode) as fc.Arbitrary<unknown>, sql_id: fc.constant(undefined) as fc.Arbitrary<unknown>, replication_index: replicationIndex }
        : { sql: maybe(j(sqlArb(mode)), 0.8), sql_id: maybe(j(smallId), 0.3), replication_index: replicationIndex };
    return fc.oneof(
      { weight: 2, arbitrary: fc.constant({ type: 'close' }) },
      { weight: 8, arbitrary: fc.record({ type: fc.constant('execute'), stmt: stmt(mode) }) },
      { weight: 5, arbitrary: fc.record({ type: fc.constant('batch'), batch: batch(mode) }) },
      { weight: 2, arbitrary: fc.record({ type: fc.constantFrom('sequence', 'describe'), ...sqlOrId }) },
      { weight: 2, arbitrary: fc.record({ type: fc.constant('store_sql'), sql_id: j(smallId), sql: j(sqlArb(mode)) }) },
      { weight: 1, arbitrary: fc.record({ type: fc.constant('close_sql'), sql_id: j(smallId) }) },
      { weight: 1, arbitrary: fc.constant({ type: 'get_autocommit' }) },
      ...(junkWeight === 0 ? [] : [{ weight: junkWeight, arbitrary: fc.oneof(fc.record({ type: orJunk(weird) }), junk) }]),
    );
  };
  return { value, smallId, replicationIndex, cond, stmt, batch, streamRequest };
}

/** Mostly well-formed shapes with now and then a wrong type: the HTTP suites. */
export const loose = shapes(1);
/** Well-formed shapes (odd values, never a wrong type): what a strict decoder lets through. */
export const strict = shapes(0);

/** A baton: null (new stream), one handed out earlier (by index into the mode's pool), or forged. */
export type BatonRef = { pool: number } | { literal: unknown };

export const batonArb: fc.Arbitrary<BatonRef> = fc.oneof(
  { weight: 5, arbitrary: fc.constant({ literal: null }) },
  { weight: 4, arbitrary: fc.nat().map((pool) => ({ pool })) },
  {
    weight: 1,
    arbitrary: fc
      .oneof(
        weird,
        fc.constantFrom('', 'A'.repeat(64), '-1', '18446744073709551616'),
        // forged: the size and alphabet of a real baton (48 bytes, unpadded base64)
        fc.uint8Array({ minLength: 48, maxLength: 48 }).map((b) => Buffer.from(b).toString('base64').replace(/=+$/, '')),
        hugeNumber,
        fc.constant([]),
      )
      .map((literal) => ({ literal })),
  },
);

// ---- bytes ------------------------------------------------------------------------------------

/** Flips, truncations, insertions and overwrites of encoded bytes. */
export function mutateBytes(base: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Buffer> {
  const edit = fc.tuple(fc.constantFrom('flip', 'cut', 'insert', 'set'), fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 6 }));
  return fc.tuple(base, fc.array(edit, { minLength: 1, maxLength: 3 })).map(([b, edits]) => {
    let out = Buffer.from(b);
    for (const [op, at, bytes] of edits) {
      const i = out.length === 0 ? 0 : at % out.length;
      if (op === 'flip' && out.length > 0) out[i] = out[i]! ^ (1 << (bytes[0]! % 8));
      else if (op === 'cut') out = out.subarray(0, i);
      else if (op === 'insert') out = Buffer.concat([out.subarray(0, i), bytes, out.subarray(i)]);
      else if (out.length > 0) out[i] = bytes[0]!;
    }
    return out;
  });
}

/** JSON text nested `depth` levels, near the 128-level bound of the JSON decoders. */
export const deepJson = fc.tuple(fc.integer({ min: 100, max: 200 }), fc.constantFrom('[', '{"a":')).map(([depth, open]) => {
  const close = open === '[' ? ']' : '}';
  return open.repeat(depth) + '1' + close.repeat(depth);
});

/** Stringifies `value` (undefined fields dropped); bigint-free by construction. */
export const json = (value: unknown): string => JSON.stringify(value) ?? 'null';

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
