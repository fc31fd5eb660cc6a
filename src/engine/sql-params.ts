/**
 * Finds the parameters of one SQL statement the way SQLite numbers them: `?` takes one more than the
 * largest index so far, `?NNN` index NNN, and `:name` / `@name` / `$name` a new index on first use.
 * Indices no parameter names (the holes of `SELECT ?3, ?1`) are not listed; SQLite counts them as
 * nameless. better-sqlite3 does not expose sqlite3_bind_parameter_name, so the binder needs this to
 * apply sqld's binding rules.
 */
export interface SqlParam {
  index: number;
  /** Full name including its prefix (`?3`, `:x`), or null for a bare `?`. */
  name: string | null;
}

const IDENT_CHAR = /[A-Za-z0-9_$\u0080-\uffff]/;

function skipQuoted(sql: string, i: number, close: string): number {
  let j = i + 1;
  while (j < sql.length) {
    if (sql[j] === close) {
      if (sql[j + 1] === close && close !== ']') {
        j += 2;
        continue;
      }
      return j + 1;
    }
    j++;
  }
  return j;
}

export function findParameters(sql: string): SqlParam[] {
  const params: SqlParam[] = [];
  const byName = new Map<string, number>();
  let maxIndex = 0;
  let i = 0;
  while (i < sql.length) {
    const c = sql[i]!;
    if (c === "'" || c === '"' || c === '`') {
      i = skipQuoted(sql, i, c);
    } else if (c === '[') {
      i = skipQuoted(sql, i, ']');
    } else if (c === '-' && sql[i + 1] === '-') {
      const nl = sql.indexOf('\n', i);
      i = nl < 0 ? sql.length : nl + 1;
    } else if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end < 0 ? sql.length : end + 2;
    } else if (c === '?') {
      let j = i + 1;
      while (j < sql.length && /[0-9]/.test(sql[j]!)) j++;
      if (j === i + 1) {
        maxIndex += 1;
        params.push({ index: maxIndex, name: null });
      } else {
        const name = sql.slice(i, j);
        const index = Number(sql.slice(i + 1, j));
        if (!byName.has(name)) {
          byName.set(name, index);
          maxIndex = Math.max(maxIndex, index);
          params.push({ index, name });
        }
      }
      i = j;
    } else if ((c === ':' || c === '@' || c === '$') && i + 1 < sql.length && IDENT_CHAR.test(sql[i + 1]!)) {
      let j = i + 1;
      while (j < sql.length && (IDENT_CHAR.test(sql[j]!) || (c === '$' && sql[j] === ':' && sql[j + 1] === ':'))) {
        j += sql[j] === ':' ? 2 : 1;
      }
      const name = sql.slice(i, j);
      if (!byName.has(name)) {
        maxIndex += 1;
        byName.set(name, maxIndex);
        params.push({ index: maxIndex, name });
      }
      i = j;
    } else if (IDENT_CHAR.test(c)) {
      // Skip a whole word so that `a:b` style tokens inside identifiers are not misread.
      let j = i + 1;
      while (j < sql.length && IDENT_CHAR.test(sql[j]!)) j++;
      i = j;
    } else {
      i++;
    }
  }
  // One entry per index: a `?NNN` naming an index a bare `?` already took names that slot (as SQLite).
  const byIndex = new Map<number, SqlParam>();
  for (const p of params) {
    const seen = byIndex.get(p.index);
    if (!seen || (seen.name === null && p.name !== null)) byIndex.set(p.index, p);
  }
  return [...byIndex.values()].sort((a, b) => a.index - b.index);
}
