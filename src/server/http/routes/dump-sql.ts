import type { SqlValue } from '../../../engine/values.js';

/**
 * SQL text for `GET /dump` (spec §4.9): identifiers and literals written so that SQLite reads back
 * exactly the values it stored (same value, same storage class).
 */

/** SQLite's keywords (sqlite.org/lang_keywords.html); such names are quoted even when plain. */
const KEYWORDS = new Set(
  (
    'ABORT ACTION ADD AFTER ALL ALTER ALWAYS ANALYZE AND AS ASC ATTACH AUTOINCREMENT BEFORE BEGIN BETWEEN BY ' +
    'CASCADE CASE CAST CHECK COLLATE COLUMN COMMIT CONFLICT CONSTRAINT CREATE CROSS CURRENT CURRENT_DATE ' +
    'CURRENT_TIME CURRENT_TIMESTAMP DATABASE DEFAULT DEFERRABLE DEFERRED DELETE DESC DETACH DISTINCT DO DROP ' +
    'EACH ELSE END ESCAPE EXCEPT EXCLUDE EXCLUSIVE EXISTS EXPLAIN FAIL FILTER FIRST FOLLOWING FOR FOREIGN FROM ' +
    'FULL GENERATED GLOB GROUP GROUPS HAVING IF IGNORE IMMEDIATE IN INDEX INDEXED INITIALLY INNER INSERT ' +
    'INSTEAD INTERSECT INTO IS ISNULL JOIN KEY LAST LEFT LIKE LIMIT MATCH MATERIALIZED NATURAL NO NOT NOTHING ' +
    'NOTNULL NULL NULLS OF OFFSET ON OR ORDER OTHERS OUTER OVER PARTITION PLAN PRAGMA PRECEDING PRIMARY QUERY ' +
    'RAISE RANGE RECURSIVE REFERENCES REGEXP REINDEX RELEASE RENAME REPLACE RESTRICT RETURNING RIGHT ROLLBACK ' +
    'ROW ROWS SAVEPOINT SELECT SET TABLE TEMP TEMPORARY THEN TIES TO TRANSACTION TRIGGER UNBOUNDED UNION ' +
    'UNIQUE UPDATE USING VACUUM VALUES VIEW VIRTUAL WHEN WHERE WINDOW WITH WITHOUT'
  ).split(' '),
);

/** A name as the shell writes it: bare when it is a plain ASCII identifier and no keyword, else `"…"`. */
export function quoteIdent(name: string): string {
  if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) && !KEYWORDS.has(name.toUpperCase())) return name;
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * Characters a plain `'…'` literal cannot carry through a SQL script (line breaks survive, but the
 * shell spells them out so every row stays on one line; NUL would end the statement text). Each is
 * replaced by a token absent from the text and restored with `replace(…, token, char(code))`. The
 * first one listed is restored last (outermost), which gives the shell's
 * `replace('a\nb','\n',char(10))` for a plain line break.
 */
const SPECIAL: readonly { char: string; code: number; names: readonly string[] }[] = [
  { char: '\n', code: 10, names: ['\\n', '\\012'] },
  { char: '\r', code: 13, names: ['\\r', '\\015'] },
  { char: '\0', code: 0, names: ['\\0', '\\000'] },
];

function quoteText(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}

/**
 * A token standing for `char` in `text`: SQLite's replace() scans left to right without overlaps, as
 * String.split does, so a token is accepted only if splitting on it gives back exactly the original.
 */
function pickToken(text: string, char: string, names: readonly string[]): { token: string; replaced: string } {
  const parts = text.split(char);
  const candidates = function* (): Generator<string> {
    yield* names;
    for (let i = 0; ; i++) yield `${names[0]}${i}\\`;
  };
  for (const token of candidates()) {
    const replaced = parts.join(token);
    if (replaced.split(token).join(char) === text) return { token, replaced };
  }
  throw new Error('unreachable');
}

/** A text value as a SQL expression evaluating to exactly that text. */
export function textLiteral(s: string): string {
  if (!/[\n\r\0]/.test(s)) return quoteText(s);
  const restores: { token: string; code: number }[] = [];
  let text = s;
  for (const special of SPECIAL) {
    if (!text.includes(special.char)) continue;
    const { token, replaced } = pickToken(text, special.char, special.names);
    text = replaced;
    restores.push({ token, code: special.code });
  }
  let expr = quoteText(text);
  for (let i = restores.length - 1; i >= 0; i--) {
    const r = restores[i]!;
    expr = `replace(${expr},${quoteText(r.token)},char(${r.code}))`;
  }
  return expr;
}

/**
 * A real as SQLite reads it back as the same REAL: JavaScript's shortest round-trip digits (SQLite's
 * parser rounds correctly), with `.0` added when the digits alone would read as an integer, the
 * sign of -0.0 kept, and infinities as `1e999` like the shell.
 */
export function realLiteral(x: number): string {
  if (Number.isNaN(x)) return 'NULL';
  if (x === Infinity) return '1e999';
  if (x === -Infinity) return '-1e999';
  if (Object.is(x, -0)) return '-0.0';
  const s = String(x);
  return /[.e]/.test(s) ? s : `${s}.0`;
}

/** `X'…'` with lowercase hex digits, as the shell writes blobs. */
export function blobLiteral(b: Uint8Array): string {
  return `X'${Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')}'`;
}

/** Any engine value as a SQL literal (integers are bigint: exact over the whole 64-bit range). */
export function sqlLiteral(v: SqlValue): string {
  if (v === null) return 'NULL';
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') return realLiteral(v);
  if (typeof v === 'string') return textLiteral(v);
  return blobLiteral(v);
}
