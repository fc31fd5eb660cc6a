import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { SqlConnection } from '../../src/engine/connection.js';
import { silentLogger } from '../../src/engine/logger.js';
import type { NamespaceDb } from '../../src/engine/namespace-db.js';
import type { ProgramStep } from '../../src/engine/program.js';
import type { SqlValue } from '../../src/engine/values.js';
import { ErrorCode, State, type ExecReq, type ExecRequestBody, type ExecResp, type ProxyError, type RespStep } from '../../src/rpc/messages.js';
import { codecs } from '../../src/rpc/proto.js';
import { PROGRAM_RESP_FLUSH_BYTES, ProgramEventReader, programToProxy, type ProgramReadResult } from '../../src/rpc/proxy/convert.js';
import { createProxyService, type ProxyService, type ProxyServiceDeps } from '../../src/rpc/proxy/proxy-service.js';
import { GrpcError, GrpcStatus, type AnyMethod, type CallContext } from '../../src/rpc/service.js';
import { EngineScope, run } from '../helpers/engine-log.js';

/** An async request source the test pushes into (the transport's role). */
class Feed<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private wake: (() => void) | null = null;
  private ended = false;
  private error: Error | null = null;

  push(v: T): void {
    this.items.push(v);
    this.notify();
  }

  end(error: Error | null = null): void {
    this.ended = true;
    this.error = error;
    this.notify();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      const v = this.items.shift();
      if (v !== undefined) yield v;
      else if (this.ended) {
        if (this.error !== null) throw this.error;
        return;
      } else await new Promise<void>((r) => (this.wake = r));
    }
  }

  private notify(): void {
    this.wake?.();
    this.wake = null;
  }
}

function callContext(opts: { write?: boolean; signal?: AbortSignal } = {}): CallContext {
  const headers: Record<string, string> = opts.write === false ? { 'x-test-readonly': '1' } : {};
  return {
    metadata: { get: (k) => headers[k], getBinary: () => undefined },
    transport: 'inter-node',
    peer: 'test',
    trustedPeer: true,
    signal: opts.signal ?? new AbortController().signal,
  };
}

const sqlStep = (sql: string, positional: SqlValue[] = [], cond: ProgramStep['cond'] = null): ProgramStep => ({ cond, sql, args: { positional, named: new Map() } });
const program = (...steps: (ProgramStep | string)[]): ExecRequestBody => ({ execute: { pgm: programToProxy(steps.map((s) => (typeof s === 'string' ? sqlStep(s) : s))) } });

/** One StreamExec call driven like a replica drives it. */
class StreamClient {
  readonly feed = new Feed<ExecReq>();
  private readonly responses: AsyncIterator<ExecResp>;
  private nextId = 0;
  batches = 0;
  events: RespStep[] = [];

  constructor(svc: ProxyService, ctx = callContext()) {
    const method = svc.service.methods.find((m: AnyMethod) => m.path === '/proxy.Proxy/StreamExec')!;
    if (method.kind !== 'bidi') throw new Error('StreamExec is not bidi');
    this.responses = (method.handler as (r: AsyncIterable<ExecReq>, c: CallContext) => AsyncIterable<ExecResp>)(this.feed, ctx)[Symbol.asyncIterator]();
  }

  send(request: ExecRequestBody | undefined, requestId = this.nextId): number {
    this.nextId = requestId + 1;
    this.feed.push(request === undefined ? { requestId } : { requestId, request });
    return requestId;
  }

  async next(): Promise<ExecResp | null> {
    const r = await this.responses.next();
    return r.done === true ? null : r.value;
  }

  /** Reads the answer to request `id` (a program's result or a whole-request error). */
  async answer(id: number): Promise<{ result?: ProgramReadResult; error?: ProxyError }> {
    const reader = new ProgramEventReader();
    this.batches = 0;
    this.events = [];
    for (;;) {
      const msg = await this.next();
      if (msg === null) throw new Error('stream ended');
      expect(msg.requestId).toBe(id);
      const body = msg.response!;
      if ('error' in body) return { error: body.error };
      if (!('programResp' in body)) throw new Error('unexpected describe answer');
      this.batches++;
      this.events.push(...body.programResp.steps);
      const done = reader.push(body.programResp.steps);
      if (done) return { result: done };
    }
  }

  async exec(...steps: (ProgramStep | string)[]): Promise<ProgramReadResult> {
    const { result, error } = await this.answer(this.send(program(...steps)));
    if (!result) throw new Error(`whole-request error: ${error?.message}`);
    return result;
  }
}

async function expectCallError(p: Promise<unknown>, status: GrpcStatus, message: string | RegExp): Promise<void> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(GrpcError);
  expect((err as GrpcError).status).toBe(status);
  expect((err as GrpcError).message).toMatch(message);
}

let scope: EngineScope;
let db: NamespaceDb;
let svc: ProxyService;
let expired: string[];

function makeService(extra: Partial<ProxyServiceDeps> = {}): ProxyService {
  return createProxyService({
    resolve: (ctx) => Promise.resolve({ namespace: 'default', db, allowWrite: ctx.metadata.get('x-test-readonly') === undefined }),
    logger: silentLogger(),
    maxResponseBytes: 10_000_000,
    onClientExpired: (id) => expired.push(id),
    ...extra,
  });
}

function unary<Req, Res>(s: ProxyService, name: string): (req: Req, ctx?: CallContext) => Promise<Res> {
  const m = s.service.methods.find((x: AnyMethod) => x.path === `/proxy.Proxy/${name}`)!;
  return (req, ctx = callContext()) => (m.handler as (r: Req, c: CallContext) => Promise<Res>)(req, ctx);
}

async function count(sql = 'SELECT count(*) FROM t'): Promise<bigint> {
  const conn = db.connect();
  try {
    return (await run(conn, sql)).rows[0]![0] as bigint;
  } finally {
    conn.close();
  }
}

beforeEach(async () => {
  scope = new EngineScope();
  db = await scope.open(join(scope.tempDir(), 'ns'));
  expired = [];
  svc = makeService();
  const setup = new StreamClient(svc);
  await setup.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, u TEXT UNIQUE)');
  setup.feed.end();
  expect(await setup.next()).toBeNull();
});

afterEach(async () => {
  svc.close();
  await scope.dispose();
});

describe('StreamExec', () => {
  it('runs a write program; finish carries the replication index and the connection state', async () => {
    const s = new StreamClient(svc);
    const r = await s.exec(sqlStep('INSERT INTO t VALUES (?, ?)', [1n, 'a']), sqlStep('INSERT INTO t VALUES (?, ?)', [2n, 'b']), 'SELECT id, u FROM t ORDER BY id');
    expect(r.outcomes.map((o) => o.type)).toEqual(['ok', 'ok', 'ok']);
    expect(r.outcomes[1]).toMatchObject({ result: { changes: 1, lastInsertRowid: 2n } });
    expect(r.outcomes[2]).toMatchObject({ result: { columns: [{ name: 'id', decltype: 'INTEGER' }, { name: 'u', decltype: 'TEXT' }], rows: [[1n, 'a'], [2n, 'b']] } });
    expect(r.isAutocommit).toBe(true);
    expect(r.lastFrameNo).not.toBeNull();
    expect(r.lastFrameNo).toBe(db.replicationIndex());
    expect(await count()).toBe(2n);
  });

  it('keeps an interactive transaction across requests until COMMIT', async () => {
    const s = new StreamClient(svc);
    expect((await s.exec('BEGIN', "INSERT INTO t VALUES (1, 'a')")).isAutocommit).toBe(false);
    expect(await count()).toBe(0n);
    expect((await s.exec("INSERT INTO t VALUES (2, 'b')", 'COMMIT')).isAutocommit).toBe(true);
    expect(await count()).toBe(2n);
  });

  it('rolls back and releases the write lock when the stream ends mid-transaction', async () => {
    const a = new StreamClient(svc);
    await a.exec('BEGIN IMMEDIATE', "INSERT INTO t VALUES (1, 'a')");
    const before = db.openConnections;
    a.feed.end();
    expect(await a.next()).toBeNull();
    expect(db.openConnections).toBe(before - 1);
    const b = new StreamClient(svc);
    expect((await b.exec("INSERT INTO t VALUES (2, 'b')")).outcomes[0]!.type).toBe('ok');
    expect(await count('SELECT group_concat(id) FROM t')).toBe('2');
  });

  it('evaluates conditions with the Hrana semantics', async () => {
    const s = new StreamClient(svc);
    const r = await s.exec(
      'SELECT 1',
      'SELECT nope',
      sqlStep('SELECT 2', [], { type: 'ok', step: 0 }),
      sqlStep('SELECT 3', [], { type: 'ok', step: 1 }),
      sqlStep('SELECT 4', [], { type: 'error', step: 1 }),
      sqlStep('SELECT 5', [], { type: 'error', step: 3 }), // a skipped step counts as failed
      sqlStep('SELECT 6', [], { type: 'not', cond: { type: 'ok', step: 0 } }),
      sqlStep('SELECT 7', [], { type: 'and', conds: [{ type: 'ok', step: 0 }, { type: 'error', step: 1 }] }),
      sqlStep('SELECT 8', [], { type: 'or', conds: [{ type: 'ok', step: 1 }, { type: 'ok', step: 3 }] }),
      sqlStep('BEGIN', [], { type: 'is_autocommit' }),
      sqlStep('SELECT 10', [], { type: 'is_autocommit' }),
      sqlStep('ROLLBACK', [], { type: 'not', cond: { type: 'is_autocommit' } }),
    );
    expect(r.outcomes.map((o) => o.type)).toEqual(['ok', 'error', 'ok', 'skipped', 'ok', 'ok', 'skipped', 'ok', 'skipped', 'ok', 'skipped', 'ok']);
    expect(r.isAutocommit).toBe(true);
  });

  it('reports constraint violations as step errors with SQLite extended codes; later steps still run', async () => {
    const s = new StreamClient(svc);
    const r = await s.exec("INSERT INTO t VALUES (1, 'a')", "INSERT INTO t VALUES (1, 'b')", "INSERT INTO t VALUES (2, 'a')", 'SELECT count(*) FROM t');
    const errors = s.events.flatMap((e) => ('stepError' in e ? [e.stepError.error] : []));
    expect(errors).toMatchObject([{ code: ErrorCode.INTERNAL, extendedCode: 1555 }, { code: ErrorCode.INTERNAL, extendedCode: 2067, message: expect.stringMatching(/UNIQUE constraint failed/) as string }]);
    expect(r.outcomes.map((o) => o.type)).toEqual(['ok', 'error', 'error', 'ok']);
    expect(r.outcomes[3]).toMatchObject({ result: { rows: [[1n]] } });
  });

  it('ends the call when request ids do not increase, closing the connection', async () => {
    const s = new StreamClient(svc);
    await s.answer(s.send(program('BEGIN', "INSERT INTO t VALUES (1, 'a')"), 5));
    const open = db.openConnections;
    s.send(program('COMMIT'), 5);
    await expectCallError(s.next(), GrpcStatus.INVALID_ARGUMENT, 'received request with id less than last received request, closing stream');
    expect(db.openConnections).toBe(open - 1);
    expect(await count()).toBe(0n);
  });

  it('ends the call for a request without body, an invalid program or a malformed message', async () => {
    const a = new StreamClient(svc);
    a.send(undefined);
    await expectCallError(a.next(), GrpcStatus.INVALID_ARGUMENT, 'invalid request');
    const b = new StreamClient(svc);
    b.send({ execute: { pgm: { steps: [{}] } } });
    await expectCallError(b.next(), GrpcStatus.INVALID_ARGUMENT, 'invalid program');
    const c = new StreamClient(svc);
    await c.exec('BEGIN IMMEDIATE');
    c.feed.end(new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'bad message'));
    await expectCallError(c.next(), GrpcStatus.INVALID_ARGUMENT, 'bad message');
    expect(db.openConnections).toBe(0);
  });

  it('answers a write without permission with a whole-request error; the stream stays usable', async () => {
    const s = new StreamClient(svc, callContext({ write: false }));
    const { error } = await s.answer(s.send(program('SELECT 1', "INSERT INTO t VALUES (1, 'a')")));
    expect(error).toMatchObject({ code: ErrorCode.INTERNAL, message: expect.stringMatching(/Write permission/) as string });
    expect((await s.exec('SELECT count(*) FROM t')).outcomes[0]).toMatchObject({ result: { rows: [[0n]] } });
  });

  it('reports TRANSACTION_TIMEOUT for the next program after the write lock preempted the transaction', async () => {
    const s = new StreamClient(svc);
    await s.exec('BEGIN IMMEDIATE', "INSERT INTO t VALUES (1, 'a')");
    for (const txn of db.openTransactions()) (txn as SqlConnection).preempt();
    expect((await s.answer(s.send(program('COMMIT')))).error).toMatchObject({ code: ErrorCode.TX_TIMEOUT, message: 'Transaction timed out' });
    expect((await s.exec('SELECT count(*) FROM t')).outcomes[0]).toMatchObject({ result: { rows: [[0n]] } });
  });

  it('splits large answers into ~100 KiB programResp messages that read back as one result', async () => {
    const s = new StreamClient(svc);
    const sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000) SELECT x, printf('%0100d', x) FROM c";
    const id = s.send(program(sql, 'SELECT 1'));
    const sizes: number[] = [];
    const reader = new ProgramEventReader();
    let done: ProgramReadResult | null = null;
    while (!done) {
      const msg = (await s.next())!;
      expect(msg.requestId).toBe(id);
      sizes.push(codecs.ExecResp.encode(msg).length);
      done = reader.push((msg.response as { programResp: { steps: RespStep[] } }).programResp.steps);
    }
    expect(sizes.length).toBeGreaterThanOrEqual(3);
    for (const size of sizes.slice(0, -1)) expect(size).toBeGreaterThanOrEqual(PROGRAM_RESP_FLUSH_BYTES);
    for (const size of sizes.slice(0, -1)) expect(size).toBeLessThan(PROGRAM_RESP_FLUSH_BYTES + 200);
    const first = done.outcomes[0]!;
    const rows = first.type === 'ok' ? first.result.rows : [];
    expect(rows).toHaveLength(3000);
    expect(rows[2999]).toEqual([3000n, '3000'.padStart(100, '0')]);
    expect(done.outcomes[1]).toMatchObject({ type: 'ok', result: { rows: [[1n]] } });
  });

  it('limits each statement\'s rows to maxResponseBytes: RESPONSE_TOO_LARGE is a step error', async () => {
    const small = makeService({ maxResponseBytes: 2000 });
    try {
      const s = new StreamClient(small);
      const r = await s.exec("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100) SELECT printf('%050d', x) FROM c", 'SELECT 1');
      expect(r.outcomes[0]).toMatchObject({ type: 'error', error: { message: expect.stringMatching(/Response is too large/) as string } });
      expect(r.outcomes[1]!.type).toBe('ok');
    } finally {
      small.close();
    }
  });

  it('a new request cancels the running one (here: waiting for the write lock)', async () => {
    const holder = new StreamClient(svc);
    await holder.exec('BEGIN IMMEDIATE');
    const s = new StreamClient(svc);
    s.send(program("INSERT INTO t VALUES (1, 'cancelled')"));
    const second = s.send(program('SELECT 42'));
    const { result } = await s.answer(second); // answers to request 0 would fail the requestId check
    expect(result?.outcomes[0]).toMatchObject({ result: { rows: [[42n]] } });
    await holder.exec('COMMIT');
    expect((await s.exec("INSERT INTO t VALUES (2, 'later')")).outcomes[0]!.type).toBe('ok');
    expect(await count('SELECT group_concat(u) FROM t')).toBe('later');
  });

  it('describes statements; a statement that does not prepare is an error answer', async () => {
    const s = new StreamClient(svc);
    s.send({ describe: { stmt: 'SELECT id, :a, ?3 FROM t' } });
    expect((await s.next())?.response).toEqual({
      describeResp: { params: [{ name: ':a' }, {}, { name: '?3' }], cols: [{ name: 'id', decltype: 'INTEGER' }, { name: ':a' }, { name: '?3' }], isExplain: false, isReadonly: true },
    });
    s.send({ describe: { stmt: 'SELECT * FROM missing' } });
    expect((await s.next())?.response).toMatchObject({ error: { code: ErrorCode.INTERNAL, message: expect.stringMatching(/no such table/) as string } });
  });

  it('ends when the caller cancels, closing the connection', async () => {
    const ac = new AbortController();
    const s = new StreamClient(svc, callContext({ signal: ac.signal }));
    await s.exec('BEGIN IMMEDIATE');
    const pending = s.next();
    ac.abort();
    expect(await pending).toBeNull();
    expect(db.openConnections).toBe(0);
  });
});

describe('unary Execute / Describe / Disconnect', () => {
  const A = '6f1c2a9e-3b1d-4c55-9a0e-1d2c3b4a5f60';
  const B = '0b8f5a2c7d3e4f1a9b6c5d4e3f2a1b0c';
  const pgm = (...sqls: string[]) => programToProxy(sqls.map((s) => sqlStep(s)));

  it('keeps a transaction on one client id across calls; state and frame number', async () => {
    const execute = unary<{ clientId: string; pgm: ReturnType<typeof pgm> }, import('../../src/rpc/messages.js').ExecuteResults>(svc, 'Execute');
    const first = await execute({ clientId: A, pgm: pgm('BEGIN', "INSERT INTO t VALUES (1, 'a')") });
    expect(first.state).toBe(State.TXN);
    expect(first.results[1]).toMatchObject({ row: { affectedRowCount: 1n, lastInsertRowid: 1n } });
    expect(await count()).toBe(0n);
    const second = await execute({ clientId: A.toUpperCase(), pgm: pgm('COMMIT') });
    expect(second.state).toBe(State.INIT);
    expect(second.currentFrameNo).toBe(db.replicationIndex());
    expect(await count()).toBe(1n);
    expect(svc.clientCount).toBe(1);
    const r = await execute({ clientId: A, pgm: programToProxy([sqlStep('SELECT 1'), sqlStep('SELECT x', [], { type: 'error', step: 0 }), sqlStep('INSERT INTO t VALUES (1, 1)')]) });
    expect(r.results[1]).toEqual({ row: { columnDescriptions: [], rows: [], affectedRowCount: 0n } });
    expect(r.results[2]).toMatchObject({ error: { code: ErrorCode.INTERNAL, extendedCode: 1555 } });
  });

  it('Disconnect rolls back and frees the write lock; bad ids, bad programs and failures are gRPC errors', async () => {
    const execute = unary<{ clientId: string; pgm?: ReturnType<typeof pgm> }, unknown>(svc, 'Execute');
    const disconnect = unary<{ clientId: string }, unknown>(svc, 'Disconnect');
    await execute({ clientId: B, pgm: pgm('BEGIN IMMEDIATE', "INSERT INTO t VALUES (1, 'b')") });
    expect(await disconnect({ clientId: B })).toEqual({});
    expect(await disconnect({ clientId: A })).toEqual({});
    expect(svc.clientCount).toBe(0);
    await execute({ clientId: A, pgm: pgm("INSERT INTO t VALUES (2, 'a')") });
    expect(await count('SELECT group_concat(id) FROM t')).toBe('2');
    await expectCallError(execute({ clientId: 'not-a-uuid', pgm: pgm('SELECT 1') }), GrpcStatus.INVALID_ARGUMENT, /client id/);
    await expectCallError(execute({ clientId: A, pgm: { steps: [{}] } }), GrpcStatus.INVALID_ARGUMENT, 'invalid program');
    await expectCallError(unary(svc, 'Execute')({ clientId: A, pgm: pgm('DELETE FROM t') }, callContext({ write: false })), GrpcStatus.PERMISSION_DENIED, /Write permission/);
  });

  it('closes clients idle longer than clientIdleMs (injected clock), rolling back', async () => {
    let t = 1_000;
    let allGone!: () => void;
    const gone = new Promise<void>((resolve) => (allGone = resolve));
    const onClientExpired = (id: string): void => {
      expired.push(id);
      if (expired.length === 2) allGone();
    };
    const idle = makeService({ clientIdleMs: 5, now: () => t, onClientExpired });
    try {
      const execute = unary<{ clientId: string; pgm: ReturnType<typeof pgm> }, unknown>(idle, 'Execute');
      await execute({ clientId: A, pgm: pgm('BEGIN IMMEDIATE', "INSERT INTO t VALUES (1, 'a')") });
      await execute({ clientId: B, pgm: pgm('SELECT 1') });
      expect(idle.sweepIdleClients()).toBe(0); // the clock has not moved
      t += 5;
      await gone; // the service's own sweep interval closes both
      expect(expired.sort()).toEqual([A.replaceAll('-', ''), B].sort());
      expect(idle.clientCount).toBe(0);
      expect([...db.openTransactions()]).toHaveLength(0);
      expect(await count()).toBe(0n);
    } finally {
      idle.close();
    }
  });

  it('Describe reports named parameters and their count; failures are PERMISSION_DENIED', async () => {
    const describeCall = unary<{ clientId: string; stmt: string }, unknown>(svc, 'Describe');
    expect(await describeCall({ clientId: A, stmt: 'SELECT u, :a, ?, $b FROM t' })).toEqual({
      description: { columnDescriptions: [{ name: 'u', decltype: 'TEXT' }, { name: ':a' }, { name: '?' }, { name: '$b' }], paramNames: [':a', '$b'], paramCount: 3n },
    });
    await expectCallError(describeCall({ clientId: A, stmt: 'SELECT * FROM missing' }), GrpcStatus.PERMISSION_DENIED, /no such table/);
  });
});
