import type { SqlParam } from './sql-params.js';
import { SqlError } from './sql-error.js';
import type { SqlArgs, SqlValue } from './values.js';

/** What better-sqlite3 receives: anonymous values in order, then one object for every named parameter. */
export type BoundArgs = [SqlValue[], Record<string, SqlValue>] | [SqlValue[]];

/**
 * Applies sqld's binding rules (spec §4.7) to every parameter index from 1 to the highest one:
 * `?NNN` takes positional value NNN, a nameless index i (a bare `?`, or an index no parameter names,
 * as in `SELECT ?3, ?1`) takes positional value i, a named parameter takes the named value whose key
 * is its full name, else its name without the prefix. More values than indices, or a missing value
 * (outside EXPLAIN), is ARGS_INVALID.
 *
 * better-sqlite3 gives the anonymous values to the nameless indices in ascending order and looks a
 * named one (`?NNN` included) up in the object by its name without its first character.
 */
export function bindArgs(params: readonly SqlParam[], args: SqlArgs, isExplain: boolean): BoundArgs {
  const count = params.length === 0 ? 0 : params[params.length - 1]!.index;
  const supplied = args.positional.length + args.named.size;
  if (supplied > count) {
    throw new SqlError('ARGS_INVALID', `too many parameters, expected ${count} found ${supplied}`);
  }
  // Only bare `?` parameters and exactly as many positional values (the usual prepared statement):
  // each index takes its value, nothing is looked up.
  if (args.named.size === 0 && args.positional.length === count && allNameless(params) && allDefined(args.positional)) {
    return [args.positional.slice()];
  }
  const names = new Map<number, string>();
  for (const p of params) if (p.name !== null) names.set(p.index, p.name);
  const anonymous: SqlValue[] = [];
  const named: Record<string, SqlValue> = {};
  // Inside EXPLAIN sqld stops binding at the first missing value: that one and all later stay NULL.
  let stopped = false;
  for (let index = 1; index <= count; index++) {
    const name = names.get(index) ?? null;
    let value = stopped ? null : lookup(name, index, args);
    if (value === undefined) {
      if (!isExplain) {
        throw new SqlError('ARGS_INVALID', `value for parameter ${name ?? index} not found`);
      }
      stopped = true;
      value = null;
    }
    if (name === null) anonymous.push(value);
    else named[name.slice(1)] = value;
  }
  return Object.keys(named).length > 0 ? [anonymous, named] : [anonymous];
}

function allNameless(params: readonly SqlParam[]): boolean {
  for (const p of params) if (p.name !== null) return false;
  return true;
}

function allDefined(values: readonly (SqlValue | undefined)[]): boolean {
  for (let i = 0; i < values.length; i++) if (values[i] === undefined) return false;
  return true;
}

/** The value sqld binds to parameter `index` (full name `name`, null if nameless), if there is one. */
function lookup(name: string | null, index: number, args: SqlArgs): SqlValue | undefined {
  if (name === null) return args.positional[index - 1];
  if (name.startsWith('?')) return args.positional[Number(name.slice(1)) - 1];
  return args.named.has(name) ? args.named.get(name) : args.named.get(name.slice(1));
}
