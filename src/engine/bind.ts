import type { SqlParam } from './sql-params.js';
import { SqlError } from './sql-error.js';
import type { SqlArgs, SqlValue } from './values.js';

/** What better-sqlite3 receives: anonymous values in order, then one object for every named parameter. */
export type BoundArgs = [SqlValue[], Record<string, SqlValue>] | [SqlValue[]];

/**
 * Applies sqld's binding rules (spec §4.7): `?NNN` takes positional value NNN, a bare `?` at index i
 * takes positional value i, a named parameter takes the named value whose key is its full name, else
 * its name without the prefix. Too many values or a missing one is ARGS_INVALID.
 */
export function bindArgs(params: readonly SqlParam[], args: SqlArgs, isExplain: boolean): BoundArgs {
  if (params.length === 0 && args.positional.length === 0 && args.named.size === 0) return [[]];
  const supplied = args.positional.length + args.named.size;
  const count = params.length === 0 ? 0 : params[params.length - 1]!.index;
  if (supplied > count) {
    throw new SqlError('ARGS_INVALID', `too many parameters, expected ${count} found ${supplied}`);
  }
  const anonymous: SqlValue[] = [];
  const named: Record<string, SqlValue> = {};
  for (const p of params) {
    let value: SqlValue | undefined;
    if (p.name === null || p.name.startsWith('?')) {
      value = args.positional[p.index - 1];
    } else {
      value = args.named.has(p.name) ? args.named.get(p.name) : args.named.get(p.name.slice(1));
    }
    if (value === undefined) {
      if (!isExplain) throw missing(p.name ?? `?${p.index}`);
      value = null;
    }
    if (p.name === null) anonymous.push(value);
    else named[p.name.slice(1)] = value;
  }
  return Object.keys(named).length > 0 ? [anonymous, named] : [anonymous];
}

function missing(name: string): SqlError {
  return new SqlError('ARGS_INVALID', `value for parameter ${name} not found`);
}
