/**
 * A client connection on a replica (spec §7.1, design.md §7): programs that only read run on the
 * local copy; a program with a write, one that opens a transaction, and everything while a
 * transaction is open on the primary run on the primary over one `Proxy.StreamExec` stream of this
 * connection (so transactions span requests). A statement that does not prepare locally (it names
 * a table the replica has not received yet) is classified by its text. Until the replica has
 * applied what the primary had at Hello, everything is forwarded. A forwarded program is answered
 * only once the replica has applied its last frame, so the client's next request — on any
 * connection — reads its own write.
 */
import type { ClientConnection, StatementDescription } from '../../engine/client-connection.js';
import type { ExecOptions, SqlConnection } from '../../engine/connection.js';
import type { Logger } from '../../engine/logger.js';
import type { ProgramStep, RunProgramOptions, StepOutcome } from '../../engine/program.js';
import type { ReplicaRole } from '../../engine/roles/replica-role.js';
import { classifyStatement } from '../../engine/sql-split.js';
import { ForbiddenError, SqlError } from '../../engine/sql-error.js';
import type { ExecResult, SqlArgs } from '../../engine/values.js';
import { programToProxy, ProgramEventReader, type ProgramReadResult } from '../../rpc/proxy/convert.js';
import type { ExecReq, ExecResp } from '../../rpc/messages.js';
import { proxyErrorToSqlError } from '../../rpc/proxy/convert.js';
import type { BidiCall } from '../../rpc/transport/grpc-client.js';
import { GrpcError, GrpcStatus } from '../../rpc/service.js';
import type { ForwardCredentials, PrimaryClient } from './primary-client.js';

export interface ForwardingOptions {
  namespace: string;
  local: SqlConnection;
  role: ReplicaRole;
  /** False until the replica applied what the primary had at Hello: then reads go to the primary too. */
  caughtUp: () => boolean;
  client: PrimaryClient;
  creds: ForwardCredentials;
  /** A forwarded program that gets no answer within this long fails (the primary is down or stuck). */
  timeoutMs: number;
  logger: Logger;
}

function proxyError(message: string, cause?: unknown): SqlError {
  return new SqlError('PROXY_ERROR', `error executing a request on the primary: ${message}`, { cause });
}

function callFailure(err: unknown): SqlError {
  if (err instanceof SqlError) return err;
  if (err instanceof GrpcError) {
    if (err.status === GrpcStatus.UNAVAILABLE) return proxyError(`the primary is unavailable (${err.message})`, err);
    return proxyError(`${GrpcStatus[err.status] ?? err.status}: ${err.message}`, err);
  }
  return proxyError(err instanceof Error ? err.message : String(err), err);
}

/** Statements that need the primary (by their text, when they do not prepare here). */
const WRITING_KINDS = new Set(['ddl', 'dml']);

interface Pending {
  id: number;
  reader: ProgramEventReader;
  resolve(r: ProgramReadResult): void;
  reject(err: Error): void;
}

/** One `Proxy.StreamExec` stream: requests in order, one at a time. */
class PrimaryStream {
  readonly #call: BidiCall<ExecReq, ExecResp>;
  readonly #ctl = new AbortController();
  #nextId = 0;
  #pending: Pending | null = null;
  #broken: SqlError | null = null;

  constructor(client: PrimaryClient, namespace: string, creds: ForwardCredentials) {
    this.#call = client.streamExec(namespace, creds, this.#ctl.signal);
    void this.#read();
  }

  get broken(): boolean {
    return this.#broken !== null;
  }

  exec(steps: readonly ProgramStep[], timeoutMs: number): Promise<ProgramReadResult> {
    if (this.#broken) return Promise.reject(this.#broken);
    if (this.#pending) return Promise.reject(new Error('a forwarded request is already running on this connection'));
    const id = this.#nextId++;
    return new Promise<ProgramReadResult>((resolve, reject) => {
      const timer = setTimeout(() => this.#fail(proxyError(`the primary did not answer within ${timeoutMs} ms`)), timeoutMs);
      this.#pending = {
        id,
        reader: new ProgramEventReader(),
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (err: Error) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      try {
        this.#call.send({ requestId: id, request: { execute: { pgm: programToProxy(steps) } } });
      } catch (err) {
        this.#fail(callFailure(err));
      }
    });
  }

  close(): void {
    if (!this.#broken) this.#broken = proxyError('the connection is closed');
    try {
      this.#call.end();
    } catch {
      // already gone
    }
    this.#ctl.abort();
  }

  async #read(): Promise<void> {
    try {
      for await (const resp of this.#call.responses) this.#onResponse(resp);
      this.#fail(proxyError('the primary closed the stream'));
    } catch (err) {
      this.#fail(callFailure(err));
    }
  }

  #onResponse(resp: ExecResp): void {
    const p = this.#pending;
    if (p === null || resp.requestId !== p.id) return; // an answer to a request given up on
    const body = resp.response;
    try {
      if (body === undefined) throw proxyError('the primary sent an empty response');
      if ('error' in body) {
        this.#pending = null;
        p.reject(proxyErrorToSqlError(body.error));
        return;
      }
      if (!('programResp' in body)) throw proxyError('the primary answered a program with something else');
      const done = p.reader.push(body.programResp.steps);
      if (done) {
        this.#pending = null;
        p.resolve(done);
      }
    } catch (err) {
      this.#fail(callFailure(err));
    }
  }

  #fail(err: SqlError): void {
    this.#broken ??= err;
    const p = this.#pending;
    this.#pending = null;
    p?.reject(err);
    this.#ctl.abort();
  }
}

export class ForwardingConnection implements ClientConnection {
  readonly #o: ForwardingOptions;
  #primary: PrimaryStream | null = null;
  /** The primary connection is inside a transaction. */
  #remoteTxn = false;
  /** The primary connection was lost inside a transaction: the next program learns it was rolled back. */
  #lostTxn = false;
  #closed = false;

  constructor(opts: ForwardingOptions) {
    this.#o = opts;
  }

  get isAutocommit(): boolean {
    return !this.#remoteTxn && this.#o.local.isAutocommit;
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  takeTimedOut(): boolean {
    return this.#o.local.takeTimedOut();
  }

  describe(sql: string): StatementDescription {
    return this.#o.local.describe(sql);
  }

  replicationIndex(): bigint | null {
    return this.#o.local.replicationIndex();
  }

  async execute(sql: string, args: SqlArgs, opts: ExecOptions): Promise<ExecResult> {
    const [outcome] = await this.runProgram([{ cond: null, sql, args }], { ...opts, isStepError: (err): err is Error => err instanceof SqlError });
    if (outcome === undefined || outcome.type === 'skipped') throw new Error('a one-statement program produced no outcome');
    if (outcome.type === 'error') throw outcome.error;
    return outcome.result;
  }

  async runProgram(steps: readonly ProgramStep[], opts: RunProgramOptions): Promise<StepOutcome[]> {
    if (this.#closed) throw new SqlError('STREAM_NOT_OPEN', 'The connection is closed');
    if (this.#lostTxn) {
      this.#lostTxn = false;
      throw proxyError('the connection to the primary was lost inside a transaction, which was rolled back');
    }
    const local = this.#o.local;
    if (!this.#mustForward(steps, opts)) {
      const outcomes = await local.runProgram(steps, opts);
      if (local.isAutocommit || local.inReadonlyTransaction) return outcomes;
      // It only read, but left a transaction open: the transaction belongs on the primary.
      local.rollback();
    }
    return this.#forward(steps, opts);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#primary?.close();
    this.#primary = null;
    this.#o.local.close();
  }

  #mustForward(steps: readonly ProgramStep[], opts: RunProgramOptions): boolean {
    if (this.#remoteTxn) return true;
    // Inside a local read-only transaction, writes fail here as they would on the primary.
    if (!this.#o.local.isAutocommit) return false;
    let forward = !this.#o.caughtUp();
    for (const step of steps) {
      if ('failed' in step) continue;
      if (!this.#readsOnly(step.sql)) {
        if (!opts.allowWrite) {
          throw new ForbiddenError('FORBIDDEN', `Authorization forbidden: Current session doesn't not have Write permission to namespace ${this.#o.namespace}`);
        }
        forward = true;
      }
    }
    return forward;
  }

  #readsOnly(sql: string): boolean {
    try {
      return this.#o.local.describe(sql).isReadonly;
    } catch {
      return !WRITING_KINDS.has(classifyStatement(sql).kind);
    }
  }

  async #forward(steps: readonly ProgramStep[], opts: RunProgramOptions): Promise<StepOutcome[]> {
    const failed = steps.find((s) => 'failed' in s);
    if (failed && 'failed' in failed) throw failed.failed;
    const started = performance.now();
    if (this.#primary?.broken) this.#primary = null;
    this.#primary ??= new PrimaryStream(this.#o.client, this.#o.namespace, this.#o.creds);
    const wasTxn = this.#remoteTxn;
    let result: ProgramReadResult;
    try {
      result = await this.#primary.exec(steps, this.#o.timeoutMs);
    } catch (err) {
      if (this.#primary.broken) {
        this.#primary = null;
        if (wasTxn) {
          // the primary rolled the transaction back: the next program hears of it instead of autocommitting
          this.#remoteTxn = false;
          this.#lostTxn = true;
        }
      }
      throw callFailure(err);
    }
    this.#remoteTxn = !result.isAutocommit;
    if (result.lastFrameNo !== null) await this.#awaitApplied(result.lastFrameNo, started);
    result.outcomes.forEach((o, i) => opts.onStep?.(i, o));
    return result.outcomes;
  }

  /** Read-your-writes: the answer waits until the replica has applied the primary's frame. */
  async #awaitApplied(frameNo: bigint, started: number): Promise<void> {
    const left = Math.max(1, Math.ceil(this.#o.timeoutMs - (performance.now() - started)));
    try {
      await this.#o.role.waitForIndex(frameNo, AbortSignal.timeout(left));
    } catch (err) {
      this.#o.logger.warn({ namespace: this.#o.namespace, frameNo: frameNo.toString(), err }, 'a forwarded write is answered before the replica applied it');
    }
  }
}
