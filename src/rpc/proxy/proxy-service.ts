/**
 * The primary's `proxy.Proxy` service (spec sqld-wire.md §6.6, §6.7): replicas send writes and
 * transactions over StreamExec (one stream = one connection), embedded replicas use the deprecated
 * unary Execute/Describe/Disconnect with a connection per client id. Programs run with the same
 * engine code as the primary's own clients (src/engine/program.ts).
 */
import type { SqlConnection } from '../../engine/connection.js';
import { errorMessage, guard, guardAsync, guardedInterval, type Logger } from '../../engine/logger.js';
import type { NamespaceDb } from '../../engine/namespace-db.js';
import { runProgram, type ProgramStep, type StatementRunner, type StepOutcome } from '../../engine/program.js';
import { SqlError } from '../../engine/sql-error.js';
import { LibsqlctlError } from '../../errors.js';
import type { DescribeRequest, DescribeResult, DisconnectMessage, ExecReq, ExecResp, ExecResponseBody, ExecuteResults, ProgramReq } from '../messages.js';
import { codecs } from '../proto.js';
import { GrpcError, GrpcStatus, toGrpcError, type BidiMethod, type CallContext, type ServiceDef, type UnaryMethod } from '../service.js';
import { describeRespFrom, describeResultFrom, executeResultsFrom, programFromProxy, ProgramEventWriter, sqlErrorToProxyError } from './convert.js';

export interface ProxyServiceDeps {
  /** Namespace + rights of a call (auth, x-proxy-authorization trust, namespace from x-namespace-bin): throws GrpcError. */
  resolve(ctx: CallContext): Promise<{ namespace: string; db: NamespaceDb; allowWrite: boolean }>;
  logger: Logger;
  maxResponseBytes: number;
  /** Unary-API client connections idle longer than this are closed (sqld: 30 s, collected every 30 s). */
  clientIdleMs?: number;
  now?: () => number;
  /** Called after an idle unary client's connection was closed, with its id in canonical form (lower-case hex, no hyphens). */
  onClientExpired?: (clientId: string) => void;
}

export interface ProxyService {
  readonly service: ServiceDef;
  /** Stops the idle sweep, ends running streams and closes every connection of the service. */
  close(): void;
  /** Unary-API clients with an open connection. */
  readonly clientCount: number;
  /** Closes the unary clients idle for `clientIdleMs` or longer now (the sweep interval calls it); returns how many. */
  sweepIdleClients(): number;
}

const DEFAULT_CLIENT_IDLE_MS = 30_000;

const isStepError = (err: unknown): err is SqlError => err instanceof SqlError;

interface ProgramOptions {
  allowWrite: boolean;
  maxResponseBytes: number;
  signal?: AbortSignal;
  onStep?: (index: number, outcome: StepOutcome) => void;
}

/** Runs a program on `conn`; a connection the write lock preempted first reports TRANSACTION_TIMEOUT. */
function execProgram(conn: SqlConnection, steps: readonly ProgramStep[], opts: ProgramOptions): Promise<StepOutcome[]> {
  if (conn.takeTimedOut()) return Promise.reject(new SqlError('TRANSACTION_TIMEOUT', 'Transaction timed out'));
  const signal = opts.signal;
  const runner: StatementRunner = {
    get isAutocommit() {
      return conn.isAutocommit;
    },
    async execute(sql, args, exec) {
      // Cancellation takes effect between statements and while waiting for the write lock.
      signal?.throwIfAborted();
      return conn.execute(sql, args, exec);
    },
  };
  return runProgram(runner, steps, { ...opts, isStepError });
}

function connectTo(db: NamespaceDb): SqlConnection {
  try {
    return db.connect();
  } catch (err) {
    throw new GrpcError(GrpcStatus.UNAVAILABLE, `Unable to create DB: ${errorMessage(err)}`, { cause: err });
  }
}

/** A message queue the bidi handler drains: push, end, or fail (queued messages go first). */
class Outbox<T> {
  private readonly items: T[] = [];
  private wake: (() => void) | null = null;
  private closed = false;
  private error: GrpcError | null = null;

  push(item: T): void {
    if (this.closed) return;
    this.items.push(item);
    this.notify();
  }

  end(): void {
    this.closed = true;
    this.notify();
  }

  fail(err: GrpcError): void {
    if (this.closed) return;
    this.error = err;
    this.end();
  }

  async *drain(): AsyncGenerator<T> {
    for (;;) {
      const item = this.items.shift();
      if (item !== undefined) {
        yield item;
        continue;
      }
      if (this.closed) {
        if (this.error) throw this.error;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}

type StreamJob = { requestId: number; steps: ProgramStep[] } | { requestId: number; describe: string };

/**
 * One StreamExec call: one connection (opened by the first request, closed when the call ends in
 * any way), requests run one at a time in arrival order, and a request that arrives cancels the one
 * still running (or waiting): the cancelled request sends nothing more — batches already flushed
 * stay sent, it gets no `finish` and no error (sqld drops the running request the same way; its
 * replica ignores answers to older request ids).
 */
class ExecStream {
  private conn: SqlConnection | null = null;
  private current: AbortController | null = null;
  private tail: Promise<void> = Promise.resolve();
  private readonly out = new Outbox<ExecResp>();
  private stopped = false;

  constructor(
    private readonly db: NamespaceDb,
    private readonly allowWrite: boolean,
    private readonly deps: ProxyServiceDeps,
  ) {}

  async *run(requests: AsyncIterable<ExecReq>, signal: AbortSignal): AsyncGenerator<ExecResp> {
    const it = requests[Symbol.asyncIterator]();
    const onAbort = (): void => this.stop();
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) this.stop();
    else void this.read(it);
    try {
      yield* this.out.drain();
    } finally {
      signal.removeEventListener('abort', onAbort);
      this.stop();
      // Let the transport release the request side; not awaited (it may be waiting for the client).
      void Promise.resolve()
        .then(() => it.return?.())
        .catch(() => undefined);
    }
  }

  /** Ends the call: the running request is cancelled, the connection closed (rolling back). */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.current?.abort(new Error('stream closed'));
    this.out.end();
    if (this.conn) guard(this.deps.logger, 'closing a proxy stream connection', () => this.conn?.close());
  }

  private fail(err: GrpcError): void {
    this.out.fail(err);
    this.stop();
  }

  /** Reads requests until the client half-closes (then lets the queue finish) or sends something invalid. */
  private async read(it: AsyncIterator<ExecReq>): Promise<void> {
    let last: number | null = null;
    try {
      for (;;) {
        const r = await it.next();
        if (this.stopped) return;
        if (r.done === true) break;
        const req = r.value;
        if (last !== null && req.requestId <= last) {
          throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'received request with id less than last received request, closing stream');
        }
        last = req.requestId;
        this.accept(req);
      }
      await this.tail;
      this.out.end();
    } catch (err) {
      this.fail(toGrpcError(err));
    }
  }

  private accept(req: ExecReq): void {
    const body = req.request;
    if (body === undefined) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'invalid request');
    const job: StreamJob =
      'execute' in body ? { requestId: req.requestId, steps: programFromProxy(body.execute.pgm) } : { requestId: req.requestId, describe: body.describe.stmt };
    this.current?.abort(new Error(`cancelled by request ${req.requestId}`));
    const controller = new AbortController();
    this.current = controller;
    this.tail = this.tail.then(() => guardAsync(this.deps.logger, 'a proxied request', () => this.runJob(job, controller.signal)));
  }

  private connection(): SqlConnection {
    if (this.conn === null) this.conn = connectTo(this.db);
    else if (this.conn.isClosed) throw new GrpcError(GrpcStatus.UNAVAILABLE, 'the database connection was closed');
    return this.conn;
  }

  private send(signal: AbortSignal, requestId: number, response: ExecResponseBody): void {
    if (!signal.aborted) this.out.push({ requestId, response });
  }

  /** Never rejects: whole-request failures are `error` answers, stream failures end the call. */
  private async runJob(job: StreamJob, signal: AbortSignal): Promise<void> {
    if (signal.aborted || this.stopped) return;
    const { requestId } = job;
    let conn: SqlConnection;
    try {
      conn = this.connection();
    } catch (err) {
      this.fail(toGrpcError(err));
      return;
    }
    if ('describe' in job) {
      let response: ExecResponseBody;
      try {
        response = { describeResp: describeRespFrom(conn.describe(job.describe)) };
      } catch (err) {
        response = { error: sqlErrorToProxyError(err) };
      }
      this.send(signal, requestId, response);
      return;
    }
    const writer = new ProgramEventWriter((steps) => this.send(signal, requestId, { programResp: { steps } }));
    try {
      writer.init();
      const opts = { allowWrite: this.allowWrite, maxResponseBytes: this.deps.maxResponseBytes, signal, onStep: writer.onStep };
      await execProgram(conn, job.steps, opts);
      if (signal.aborted) return;
      writer.finish(this.db.replicationIndex(), conn.isAutocommit);
    } catch (err) {
      writer.discard();
      if (signal.aborted || this.stopped) return;
      if (!(err instanceof LibsqlctlError)) this.deps.logger.error({ err }, `proxied program failed: ${errorMessage(err)}`);
      this.send(signal, requestId, { error: sqlErrorToProxyError(err) });
    }
  }
}

/** A unary-API client: its connection, calls serialized in arrival order, last use for the idle sweep. */
class UnaryClient {
  busy = 0;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    readonly namespace: string,
    readonly db: NamespaceDb,
    readonly conn: SqlConnection,
    public lastUsed: number,
  ) {}

  run<T>(now: () => number, fn: (conn: SqlConnection) => Promise<T>): Promise<T> {
    this.busy++;
    const result = this.tail.then(() => fn(this.conn));
    this.tail = result.catch(() => undefined);
    return result.finally(() => {
      this.busy--;
      this.lastUsed = now();
    });
  }
}

const UUID_RE = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

/** A client id as a map key: a UUID (hyphenated or not, any case), else INVALID_ARGUMENT. */
function clientKey(clientId: string): string {
  if (!UUID_RE.test(clientId)) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, `invalid client id: ${clientId}`);
  return clientId.replaceAll('-', '').toLowerCase();
}

/** Unary-API failures of a whole program or describe are PERMISSION_DENIED with their text (as sqld). */
function unaryFailure(err: unknown): GrpcError {
  if (err instanceof GrpcError) return err;
  return new GrpcError(GrpcStatus.PERMISSION_DENIED, errorMessage(err), { cause: err });
}

export function createProxyService(deps: ProxyServiceDeps): ProxyService {
  const now = deps.now ?? Date.now;
  const idleMs = deps.clientIdleMs ?? DEFAULT_CLIENT_IDLE_MS;
  const clients = new Map<string, UnaryClient>();
  const streams = new Set<ExecStream>();
  let closed = false;

  const closeClient = (key: string, client: UnaryClient): void => {
    clients.delete(key);
    guard(deps.logger, 'closing a proxy client connection', () => client.conn.close());
  };

  const clientFor = (key: string, namespace: string, db: NamespaceDb): UnaryClient => {
    if (closed) throw new GrpcError(GrpcStatus.UNAVAILABLE, 'the proxy service is shutting down');
    let client = clients.get(key);
    if (client && client.namespace !== namespace) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'client id is in use for another namespace');
    if (client && (client.conn.isClosed || client.db !== db)) {
      closeClient(key, client);
      client = undefined;
    }
    if (!client) {
      client = new UnaryClient(namespace, db, connectTo(db), now());
      clients.set(key, client);
    }
    client.lastUsed = now();
    return client;
  };

  const sweepIdleClients = (): number => {
    const t = now();
    let n = 0;
    for (const [key, client] of clients) {
      if (client.busy > 0 || t - client.lastUsed < idleMs) continue;
      closeClient(key, client);
      n++;
      guard(deps.logger, 'onClientExpired', () => deps.onClientExpired?.(key));
    }
    return n;
  };

  const sweep = guardedInterval(deps.logger, 'proxy client sweep', idleMs, sweepIdleClients);

  async function* streamExec(requests: AsyncIterable<ExecReq>, ctx: CallContext): AsyncGenerator<ExecResp> {
    const { db, allowWrite } = await deps.resolve(ctx);
    if (closed) throw new GrpcError(GrpcStatus.UNAVAILABLE, 'the proxy service is shutting down');
    const stream = new ExecStream(db, allowWrite, deps);
    streams.add(stream);
    try {
      yield* stream.run(requests, ctx.signal);
    } finally {
      streams.delete(stream);
    }
  }

  const execute = async (req: ProgramReq, ctx: CallContext): Promise<ExecuteResults> => {
    const { namespace, db, allowWrite } = await deps.resolve(ctx);
    const key = clientKey(req.clientId);
    const steps = programFromProxy(req.pgm);
    return clientFor(key, namespace, db).run(now, async (conn) => {
      try {
        const outcomes = await execProgram(conn, steps, { allowWrite, maxResponseBytes: deps.maxResponseBytes, signal: ctx.signal });
        return executeResultsFrom(outcomes, conn.isAutocommit, db.replicationIndex());
      } catch (err) {
        throw unaryFailure(err);
      }
    });
  };

  const describe = async (req: DescribeRequest, ctx: CallContext): Promise<DescribeResult> => {
    const { namespace, db } = await deps.resolve(ctx);
    const key = clientKey(req.clientId);
    return clientFor(key, namespace, db).run(now, (conn) => {
      try {
        return Promise.resolve(describeResultFrom(conn.describe(req.stmt)));
      } catch (err) {
        return Promise.reject(unaryFailure(err));
      }
    });
  };

  /** Drops the client's connection (rolling back); an unknown id, or one of another namespace, is left alone. */
  const disconnect = async (req: DisconnectMessage, ctx: CallContext): Promise<Record<string, never>> => {
    const { namespace } = await deps.resolve(ctx);
    const key = clientKey(req.clientId);
    const client = clients.get(key);
    if (client && client.namespace === namespace) closeClient(key, client);
    return {};
  };

  const methods = [
    { kind: 'bidi', path: '/proxy.Proxy/StreamExec', request: codecs.ExecReq, response: codecs.ExecResp, handler: streamExec } satisfies BidiMethod<ExecReq, ExecResp>,
    { kind: 'unary', path: '/proxy.Proxy/Execute', request: codecs.ProgramReq, response: codecs.ExecuteResults, handler: execute } satisfies UnaryMethod<ProgramReq, ExecuteResults>,
    { kind: 'unary', path: '/proxy.Proxy/Describe', request: codecs.DescribeRequest, response: codecs.DescribeResult, handler: describe } satisfies UnaryMethod<DescribeRequest, DescribeResult>,
    { kind: 'unary', path: '/proxy.Proxy/Disconnect', request: codecs.DisconnectMessage, response: codecs.Ack, handler: disconnect } satisfies UnaryMethod<DisconnectMessage, Record<string, never>>,
  ];

  return {
    service: { name: 'proxy.Proxy', methods },
    get clientCount() {
      return clients.size;
    },
    sweepIdleClients,
    close() {
      if (closed) return;
      closed = true;
      clearInterval(sweep);
      for (const stream of [...streams]) stream.stop();
      for (const [key, client] of [...clients]) closeClient(key, client);
    },
  };
}
