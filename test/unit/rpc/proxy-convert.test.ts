import { describe, expect, it } from 'vitest';
import type { ProgramStep, StepOutcome } from '../../../src/engine/program.js';
import { SqlError } from '../../../src/engine/sql-error.js';
import type { ExecResult, SqlValue } from '../../../src/engine/values.js';
import { encodeSqlValue } from '../../../src/rpc/bincode.js';
import { ErrorCode, State, type Program, type RespStep } from '../../../src/rpc/messages.js';
import { codecs } from '../../../src/rpc/proto.js';
import {
  describeFromResp,
  describeRespFrom,
  describeResultFrom,
  executeResultsFrom,
  fromRowValue,
  ProgramEventReader,
  ProgramEventWriter,
  programFromProxy,
  ProgramStreamError,
  programToProxy,
  proxyErrorToSqlError,
  respStepSize,
  sqlErrorToProxyError,
  sqliteCodeName,
  sqliteCodeNumber,
  toRowValue,
} from '../../../src/rpc/proxy/convert.js';
import { GrpcError, GrpcStatus } from '../../../src/rpc/service.js';

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const VALUES: SqlValue[] = [null, 0n, 1n, -1n, I64_MIN, I64_MAX, 0, -0.5, 1e308, Number.MIN_VALUE, '', 'héllo ✓ 😀', new Uint8Array(), new Uint8Array([0, 1, 255])];

const args = (positional: SqlValue[] = [], named: [string, SqlValue][] = []) => ({ positional, named: new Map(named) });

function result(partial: Partial<ExecResult>): ExecResult {
  const changes = partial.changes ?? 0;
  const rows = partial.rows ?? [];
  return { columns: [], rows, changes, lastInsertRowid: null, rowsRead: rows.length, rowsWritten: changes, durationMs: 0, ...partial };
}

function expectInvalid(pgm: Program | undefined, detail: RegExp): void {
  let caught: unknown;
  try {
    programFromProxy(pgm);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(GrpcError);
  expect((caught as GrpcError).status).toBe(GrpcStatus.INVALID_ARGUMENT);
  expect((caught as GrpcError).message).toBe('invalid program');
  expect(String((caught as GrpcError).cause)).toMatch(detail);
}

const q = (stmt: string, values: SqlValue[] = []) => ({ stmt, params: { positional: { values: values.map((v) => ({ data: encodeSqlValue(v) })) } }, skipRows: false });

describe('programs', () => {
  it('round-trips engine steps through proxy.Program, values of every type included', () => {
    const steps: ProgramStep[] = [
      { cond: null, sql: 'SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?', args: args(VALUES) },
      { cond: { type: 'ok', step: 0 }, sql: 'SELECT :a, @b, $c', args: args([], [[':a', I64_MIN], ['b', 'x'], ['$c', new Uint8Array([9])]]) },
      { cond: { type: 'error', step: 1 }, sql: 'SELECT 1', args: args() },
      { cond: { type: 'not', cond: { type: 'is_autocommit' } }, sql: 'ROLLBACK', args: args() },
      { cond: { type: 'and', conds: [{ type: 'ok', step: 0 }, { type: 'or', conds: [{ type: 'error', step: 2 }, { type: 'is_autocommit' }] }] }, sql: 'SELECT 2', args: args() },
      { cond: { type: 'or', conds: [] }, sql: 'SELECT 3', args: args() },
    ];
    const pgm = programToProxy(steps);
    expect(pgm.steps[2]!.query!.params).toEqual({ positional: { values: [] } });
    // through the wire codec too: what a replica sends is what the primary reads
    const wire = codecs.ProgramReq.decode(codecs.ProgramReq.encode({ clientId: 'x', pgm }));
    for (const back of [programFromProxy(pgm), programFromProxy(wire.pgm)]) {
      expect(back).toHaveLength(steps.length);
      back.forEach((s, i) => {
        const want = steps[i]!;
        if (!('sql' in s) || !('sql' in want)) throw new Error('unexpected failed step');
        expect(s.cond).toEqual(want.cond);
        expect(s.sql).toBe(want.sql);
        const norm = (v: SqlValue) => (v instanceof Uint8Array ? [...v] : v);
        expect(s.args.positional.map(norm)).toEqual(want.args.positional.map(norm));
        expect([...s.args.named].map(([k, v]) => [k, norm(v)])).toEqual([...want.args.named].map(([k, v]) => [k, norm(v)]));
      });
    }
  });

  it('refuses what the oneof cannot carry and steps that failed to build', () => {
    expect(() => programToProxy([{ cond: null, sql: 'SELECT ?, :a', args: args([1n], [['a', 2n]]) }])).toThrow(
      expect.objectContaining({ code: 'ARGS_BOTH_POSITIONAL_AND_NAMED' }) as Error,
    );
    expect(() => programToProxy([{ cond: null, failed: new Error('unknown sql_id') }])).toThrow(/cannot be forwarded/);
  });

  it('rejects malformed programs as INVALID_ARGUMENT "invalid program"', () => {
    expectInvalid(undefined, /without program/);
    expectInvalid({ steps: [{}] }, /without query/);
    expectInvalid({ steps: [{ query: { stmt: 'SELECT 1', skipRows: false } }] }, /without params/);
    expectInvalid({ steps: [{ query: { stmt: 'SELECT ?', params: { positional: { values: [{ data: new Uint8Array([9, 0, 0, 0]) }] } }, skipRows: false } }] }, /bincode/);
    expectInvalid({ steps: [{ query: { stmt: 'SELECT :a', params: { named: { names: ['a', 'b'], values: [{ data: encodeSqlValue(1n) }] } }, skipRows: false } }] }, /2 names for 1 values/);
    expectInvalid({ steps: [{ cond: { ok: { step: 0n } }, query: q('SELECT 1') }] }, /refers to step 0/);
    expectInvalid({ steps: [{ query: q('SELECT 1') }, { cond: { and: { conds: [{ err: { step: -1n } }] } }, query: q('SELECT 2') }] }, /refers to step -1/);
    expectInvalid({ steps: [{ query: q('SELECT 1') }, { cond: { not: {} }, query: q('SELECT 2') }] }, /empty condition/);
  });

  it('turns an empty statement into a failing step, not a bad program', () => {
    for (const stmt of ['', '  ;', '-- nothing\n']) {
      const [step] = programFromProxy({ steps: [{ query: q(stmt) }] });
      expect(step).toMatchObject({ cond: null, failed: { code: 'SQL_NO_STATEMENT', message: 'invalid empty statement' } });
    }
  });
});

describe('errors', () => {
  it('maps SQLite extended code names to their numbers and back', () => {
    const table: [string, number][] = [
      ['SQLITE_CONSTRAINT_UNIQUE', 2067], ['SQLITE_CONSTRAINT_PRIMARYKEY', 1555], ['SQLITE_CONSTRAINT_NOTNULL', 1299],
      ['SQLITE_CONSTRAINT_FOREIGNKEY', 787], ['SQLITE_CONSTRAINT_CHECK', 275], ['SQLITE_IOERR_SHMOPEN', 4618],
      ['SQLITE_BUSY_SNAPSHOT', 517], ['SQLITE_ABORT_ROLLBACK', 516], ['SQLITE_CANTOPEN_ISDIR', 526],
      ['SQLITE_READONLY_DBMOVED', 1032], ['SQLITE_ERROR', 1], ['SQLITE_CONSTRAINT', 19], ['SQLITE_NOTADB', 26],
    ];
    for (const [name, code] of table) {
      expect(sqliteCodeNumber(name)).toBe(code);
      expect(sqliteCodeName(code)).toBe(name);
    }
    expect(sqliteCodeNumber('SQLITE_NO_SUCH_THING')).toBe(0);
    expect(sqliteCodeNumber(undefined)).toBe(0);
    expect(sqliteCodeName(0)).toBeUndefined();
    expect(sqliteCodeName(123456)).toBeUndefined();
  });

  it('classifies errors as sqld does (§6.7)', () => {
    const unique = new SqlError('SQLITE_CONSTRAINT', 'SQLite error: UNIQUE constraint failed: t.u', { extendedCode: 'SQLITE_CONSTRAINT_UNIQUE' });
    expect(sqlErrorToProxyError(unique)).toEqual({ code: ErrorCode.INTERNAL, message: unique.message, extendedCode: 2067 });
    expect(sqlErrorToProxyError(new SqlError('TRANSACTION_TIMEOUT', 'Transaction timed out')).code).toBe(ErrorCode.TX_TIMEOUT);
    expect(sqlErrorToProxyError(new SqlError('TRANSACTION_BUSY', 'busy')).code).toBe(ErrorCode.TX_BUSY);
    expect(sqlErrorToProxyError(new SqlError('ARGS_INVALID', 'x')).code).toBe(ErrorCode.SQL_ERROR);
    expect(sqlErrorToProxyError(new SqlError('ARGS_BOTH_POSITIONAL_AND_NAMED', 'x')).code).toBe(ErrorCode.SQL_ERROR);
    expect(sqlErrorToProxyError(new SqlError('SQL_PARSE_ERROR', 'x', { extendedCode: 'SQLITE_ERROR' }))).toMatchObject({ code: ErrorCode.INTERNAL, extendedCode: 1 });
    expect(sqlErrorToProxyError(new Error('boom'))).toEqual({ code: ErrorCode.INTERNAL, message: 'boom', extendedCode: 0 });
    expect(sqlErrorToProxyError('text')).toEqual({ code: ErrorCode.INTERNAL, message: 'text', extendedCode: 0 });
  });

  it('reports the primary\'s failures on a replica as PROXY_ERROR', () => {
    const e = proxyErrorToSqlError({ code: ErrorCode.INTERNAL, message: 'SQLite error: UNIQUE constraint failed: t.u', extendedCode: 2067 });
    expect(e).toMatchObject({ code: 'PROXY_ERROR', message: 'error executing a request on the primary: SQLite error: UNIQUE constraint failed: t.u', extendedCode: 'SQLITE_CONSTRAINT_UNIQUE' });
    expect(proxyErrorToSqlError({ code: ErrorCode.TX_TIMEOUT, message: 'x', extendedCode: 0 }).extendedCode).toBeUndefined();
    expect(proxyErrorToSqlError(undefined).code).toBe('PROXY_ERROR');
  });
});

describe('results', () => {
  it('round-trips row values and rejects a missing one', () => {
    for (const v of VALUES) expect(fromRowValue(toRowValue(v))).toEqual(v);
    expect(fromRowValue({ null: false })).toBeNull();
    expect(() => fromRowValue(undefined)).toThrow(ProgramStreamError);
  });

  it('builds ExecuteResults: a skipped step is an empty ResultRows, state and frame number', () => {
    const outcomes: StepOutcome[] = [
      { type: 'ok', result: result({ columns: [{ name: 'a', decltype: 'INT' }, { name: 'b', decltype: null }], rows: [[1n, null]], changes: 1, lastInsertRowid: 7n }) },
      { type: 'error', error: new SqlError('ARGS_INVALID', 'bad') },
      { type: 'skipped' },
    ];
    const r = executeResultsFrom(outcomes, false, 42n);
    expect(r.state).toBe(State.TXN);
    expect(r.currentFrameNo).toBe(42n);
    expect(r.results[0]).toEqual({
      row: { columnDescriptions: [{ name: 'a', decltype: 'INT' }, { name: 'b' }], rows: [{ values: [{ data: encodeSqlValue(1n) }, { data: encodeSqlValue(null) }] }], affectedRowCount: 1n, lastInsertRowid: 7n },
    });
    expect(r.results[1]).toEqual({ error: { code: ErrorCode.SQL_ERROR, message: 'bad', extendedCode: 0 } });
    expect(r.results[2]).toEqual({ row: { columnDescriptions: [], rows: [], affectedRowCount: 0n } });
    const init = executeResultsFrom([], true, null);
    expect(init.state).toBe(State.INIT);
    expect('currentFrameNo' in init).toBe(false);
  });

  it('converts descriptions for StreamExec and the unary Describe', () => {
    const d = { params: [':a', null, '?3'], columns: [{ name: 'x', decltype: 'TEXT' }, { name: 'y', decltype: null }], isExplain: false, isReadonly: true };
    const resp = describeRespFrom(d);
    expect(resp).toEqual({ params: [{ name: ':a' }, {}, { name: '?3' }], cols: [{ name: 'x', decltype: 'TEXT' }, { name: 'y' }], isExplain: false, isReadonly: true });
    expect(describeFromResp(resp)).toEqual(d);
    expect(describeResultFrom(d)).toEqual({ description: { columnDescriptions: resp.cols, paramNames: [':a', '?3'], paramCount: 3n } });
  });
});

const kinds = (events: readonly RespStep[]) => events.map((e) => Object.keys(e)[0]);

function writeProgram(outcomes: StepOutcome[], flushBytes?: number): RespStep[][] {
  const batches: RespStep[][] = [];
  const w = new ProgramEventWriter((b) => batches.push(b), flushBytes);
  w.init();
  outcomes.forEach((o, i) => w.onStep(i, o));
  w.finish(12n, true);
  return batches;
}

describe('StreamExec events', () => {
  const outcomes: StepOutcome[] = [
    { type: 'ok', result: result({ columns: [{ name: 'a', decltype: 'INTEGER' }, { name: 'b', decltype: null }], rows: [[1n, 'x'], [null, new Uint8Array([1])]] }) },
    { type: 'error', error: new SqlError('SQLITE_CONSTRAINT', 'c', { extendedCode: 'SQLITE_CONSTRAINT_PRIMARYKEY' }) },
    { type: 'skipped' },
    { type: 'ok', result: result({ changes: 3, lastInsertRowid: -5n }) },
  ];

  it('writes sqld\'s event order and reads it back', () => {
    const batches = writeProgram(outcomes);
    expect(batches).toHaveLength(1);
    const events = batches[0]!;
    expect(kinds(events)).toEqual([
      'init',
      'beginStep', 'colsDescription', 'beginRows', 'beginRow', 'addRowValue', 'addRowValue', 'finishRow', 'beginRow', 'addRowValue', 'addRowValue', 'finishRow', 'finishRows', 'finishStep',
      'beginStep', 'stepError', 'finishStep',
      'beginStep', 'finishStep',
      'beginStep', 'colsDescription', 'beginRows', 'finishRows', 'finishStep',
      'finish',
    ]);
    expect(events[15]).toEqual({ stepError: { error: { code: ErrorCode.INTERNAL, message: 'c', extendedCode: 1555 } } });
    expect(events.at(-2)).toEqual({ finishStep: { affectedRowCount: 3n, lastInsertRowid: -5n } });
    expect(events.at(-1)).toEqual({ finish: { lastFrameNo: 12n, isAutocommit: true } });
    const seen: number[] = [];
    const read = new ProgramEventReader((i) => seen.push(i)).push(events);
    expect(seen).toEqual([0, 1, 2, 3]);
    expect(read?.lastFrameNo).toBe(12n);
    expect(read?.isAutocommit).toBe(true);
    expect(read?.outcomes[0]).toEqual(outcomes[0]);
    expect(read?.outcomes[1]).toMatchObject({ type: 'error', error: { code: 'PROXY_ERROR', message: 'error executing a request on the primary: c', extendedCode: 'SQLITE_CONSTRAINT_PRIMARYKEY' } });
    expect(read?.outcomes[2]).toEqual({ type: 'skipped' });
    expect(read?.outcomes[3]).toEqual(outcomes[3]);
  });

  it('flushes once the encoded size reaches the threshold; batches concatenate to one valid sequence', () => {
    const rows = Array.from({ length: 500 }, (_, i) => [BigInt(i), 'v'.repeat(i % 50)]);
    const big: StepOutcome[] = [{ type: 'ok', result: result({ columns: [{ name: 'i', decltype: null }, { name: 's', decltype: null }], rows }) }, { type: 'skipped' }];
    const batches = writeProgram(big, 1000);
    expect(batches.length).toBeGreaterThan(5);
    for (const b of batches.slice(0, -1)) {
      const size = codecs.ExecResp.encode({ requestId: 0, response: { programResp: { steps: b } } }).length - 3; // minus ExecResp's framing
      expect(size).toBeGreaterThanOrEqual(1000);
      expect(size - 2 - respStepSize(b.at(-1)!)).toBeLessThan(1000);
    }
    const reader = new ProgramEventReader();
    batches.slice(0, -1).forEach((b) => expect(reader.push(b)).toBeNull());
    expect(reader.push(batches.at(-1)!)?.outcomes).toEqual(big);
  });

  it('estimates exactly the protobuf size of the events it writes', () => {
    const events = writeProgram([...outcomes, { type: 'error', error: new SqlError('TRANSACTION_TIMEOUT', 'Transaction timed out') }])[0]!;
    events.push({ finish: { isAutocommit: false } }, { addRowValue: { val: { real: 1.5 } } }, { addRowValue: { val: { integer: I64_MIN } } });
    for (const e of events) {
      const inner = respStepSize(e);
      const wire = codecs.ExecResp.encode({ requestId: 0, response: { programResp: { steps: [e] } } });
      const stepField = 1 + (inner < 128 ? 1 : 2) + inner;
      expect(wire.length, JSON.stringify(Object.keys(e))).toBe(1 + (stepField < 128 ? 1 : 2) + stepField);
    }
  });

  it('rejects malformed event sequences', () => {
    const bad: RespStep[][] = [
      [{ beginStep: {} }],
      [{ init: {} }, { init: {} }],
      [{ init: {} }, { finishStep: { affectedRowCount: 0n } }],
      [{ init: {} }, { beginStep: {} }, { finish: { isAutocommit: true } }],
      [{ init: {} }, { beginStep: {} }, { colsDescription: { columns: [] } }, { finishStep: { affectedRowCount: 0n } }],
      [{ init: {} }, { beginStep: {} }, { colsDescription: { columns: [{ name: 'a' }] } }, { beginRows: {} }, { beginRow: {} }, { finishRow: {} }],
      [{ init: {} }, { beginStep: {} }, { colsDescription: { columns: [] } }, { beginRows: {} }, { beginRow: {} }, { addRowValue: {} }],
      [{ init: {} }, { beginStep: {} }, { stepError: {} }],
      [{ init: {} }, { beginStep: {} }, { stepError: { error: { code: 3, message: 'x', extendedCode: 0 } } }, { beginRows: {} }],
      [{ init: {} }, { finish: { isAutocommit: true } }, { init: {} }],
      [{ init: {} }, {} as RespStep],
    ];
    for (const events of bad) expect(() => new ProgramEventReader().push(events), JSON.stringify(kinds(events))).toThrow(ProgramStreamError);
  });

  it('accepts a step error after partial rows and drops those rows', () => {
    const events: RespStep[] = [
      { init: {} }, { beginStep: {} }, { colsDescription: { columns: [{ name: 'a' }] } }, { beginRows: {} },
      { beginRow: {} }, { addRowValue: { val: { integer: 1n } } }, { finishRow: {} }, { beginRow: {} },
      { stepError: { error: { code: ErrorCode.INTERNAL, message: 'Response is too large', extendedCode: 0 } } },
      { finishStep: { affectedRowCount: 0n } }, { finish: { isAutocommit: true } },
    ];
    expect(new ProgramEventReader().push(events)?.outcomes).toMatchObject([{ type: 'error', error: { message: 'error executing a request on the primary: Response is too large' } }]);
  });
});
