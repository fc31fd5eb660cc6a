import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { bindArgs } from '../../src/engine/bind.js';
import { SqlError } from '../../src/engine/sql-error.js';
import { findParameters } from '../../src/engine/sql-params.js';
import type { SqlArgs, SqlValue } from '../../src/engine/values.js';

/**
 * sqld's binding rules (spec §4.7) as applied by bindArgs, checked both on what bindArgs hands to
 * better-sqlite3 and on what SQLite then returns for the statement.
 */

const db = new Database(':memory:');
afterAll(() => db.close());

const positional = (...values: SqlValue[]): SqlArgs => ({ positional: values, named: new Map() });
const named = (entries: Record<string, SqlValue>): SqlArgs => ({ positional: [], named: new Map(Object.entries(entries)) });

/** Binds `args` to `sql` the way the engine does and returns the one row SQLite answers. */
function row(sql: string, args: SqlArgs, isExplain = false): unknown[] {
  const bound = bindArgs(findParameters(sql), args, isExplain);
  return db.prepare(sql).raw(true).get(...bound) as unknown[];
}

/** The SqlError bindArgs throws for `sql` and `args`. */
function bindError(sql: string, args: SqlArgs): SqlError {
  let caught: unknown;
  try {
    bindArgs(findParameters(sql), args, false);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(SqlError);
  return caught as SqlError;
}

describe('bindArgs: ?NNN with holes', () => {
  it('binds every index up to the highest, a hole taking its positional value', () => {
    expect(row('SELECT ?3, ?1', positional('one', 'two', 'three'))).toEqual(['three', 'one']);
    // the hole (index 2) is a nameless parameter and gets the second value
    expect(bindArgs(findParameters('SELECT ?3, ?1'), positional('one', 'two', 'three'), false)).toEqual([['two'], { 1: 'one', 3: 'three' }]);
  });

  it('binds a lone high index, holes below it included', () => {
    expect(row('SELECT ?4', positional(1, 2, 3, 4))).toEqual([4]);
    expect(row('SELECT ?2 || ?5', positional('a', 'b', 'c', 'd', 'e'))).toEqual(['be']);
  });
});

describe('bindArgs: mixed ? and ?NNN', () => {
  it('a bare ? takes one more than the largest index so far', () => {
    expect(row('SELECT ?2, ?, ?3', positional('one', 'two', 'three'))).toEqual(['two', 'three', 'three']);
    expect(row('SELECT ?, ?1, ?', positional('a', 'b'))).toEqual(['a', 'a', 'b']);
    expect(row('SELECT ? || ?2 || ?1', positional('x', 'y'))).toEqual(['xyx']);
    expect(row('SELECT ?3, ?', positional(1, 2, 3, 4))).toEqual([3, 4]);
  });
});

describe('bindArgs: counts', () => {
  it('more values than the highest index is ARGS_INVALID "too many parameters"', () => {
    const err = bindError('SELECT ?3, ?1', positional(1, 2, 3, 4));
    expect(err.code).toBe('ARGS_INVALID');
    expect(err.message).toBe('too many parameters, expected 3 found 4');
    expect(bindError('SELECT 1', positional(1)).message).toBe('too many parameters, expected 0 found 1');
    expect(bindError('SELECT :a', named({ a: 1, b: 2 })).message).toBe('too many parameters, expected 1 found 2');
  });

  it('fewer values than indices is ARGS_INVALID "value for parameter N not found"', () => {
    // index 2 is a hole: nameless, so sqld names it by its number
    const hole = bindError('SELECT ?3, ?1', positional('one'));
    expect(hole.code).toBe('ARGS_INVALID');
    expect(hole.message).toBe('value for parameter 2 not found');
    expect(bindError('SELECT ?, ?', positional(1)).message).toBe('value for parameter 2 not found');
    expect(bindError('SELECT ?', positional()).message).toBe('value for parameter 1 not found');
    // a ?NNN parameter is named, so its name is reported
    expect(bindError('SELECT ?1, ?3, ?2', positional(1, 2)).message).toBe('value for parameter ?3 not found');
    // positional values never reach a named parameter, nor named values a positional one
    expect(bindError('SELECT :a', positional(1)).message).toBe('value for parameter :a not found');
    expect(bindError('SELECT ?', named({ a: 1 })).message).toBe('value for parameter 1 not found');
  });

  it('inside EXPLAIN a missing value binds NULL instead of failing', () => {
    expect(bindArgs(findParameters('EXPLAIN SELECT ?3, ?1'), positional(), true)).toEqual([[null], { 1: null, 3: null }]);
    expect(() => row('EXPLAIN SELECT ?, :a', positional(), true)).not.toThrow();
  });
});

describe('bindArgs: named parameters', () => {
  it('binds :a, @b, $c by bare name and by full name, and reuses a repeated name', () => {
    expect(row('SELECT :a, @b, $c', named({ a: 1, b: 'bee', c: 2.5 }))).toEqual([1, 'bee', 2.5]);
    expect(row('SELECT :a, @b, $c', named({ ':a': 10, '@b': 20, $c: 30 }))).toEqual([10, 20, 30]);
    expect(row('SELECT :v + :v', named({ v: 21 }))).toEqual([42]);
  });

  it('a missing named value is reported by its full name', () => {
    const err = bindError('SELECT :a, :b', named({ a: 1 }));
    expect(err.code).toBe('ARGS_INVALID');
    expect(err.message).toBe('value for parameter :b not found');
  });

  it('no parameters and no values binds nothing', () => {
    expect(bindArgs(findParameters('SELECT 1'), positional(), false)).toEqual([[]]);
    expect(row("SELECT '?1', ? /* ?2 */ -- ?3\n", positional('x'))).toEqual(['?1', 'x']);
  });
});
