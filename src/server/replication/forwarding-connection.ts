/**
 * A client connection on a replica (spec §7.1, design.md §7): programs that only read run on the
 * local copy; a program with a write, one that opens a transaction, and everything while a
 * transaction is open on the primary run on the primary over a `Proxy.StreamExec` stream, which
 * this connection keeps while a transaction is open there (so transactions span requests) and
 * otherwise hands back to the namespace's pool (primary-streams.ts). A statement that does not prepare locally (it names
 * a table the replica has not received yet) is classified by its text. Until the replica has
 * applied what the primary had at Hello, everything is forwarded. A forwarded program is answered
 * as soon as the primary answers; it raises the namespace's read fence (read-fence.ts), which every
 * local read waits for first, so the client's next request — on any connection — reads its own write.
 */
import type { ClientConnection, StatementDescription } from '../../engine/client-connection.js';
import type { ExecOptions, SqlConnection } from '../../engine/connection.js';
import type { Logger } from '../../engine/logger.js';
import type { ProgramStep, RunProgramOptions, StepOutcome } from '../../engine/program.js';
import { classifyStatement } from '../../engine/sql-split.js';
import { ForbiddenError, SqlError } from '../../engine/sql-error.js';
import type { ExecResult, SqlArgs } from '../../engine/values.js';
import type { ProgramReadResult } from '../../rpc/proxy/convert.js';
import type { ForwardCredentials } from './primary-client.js';
import type { ReadFence } from './read-fence.js';
import { callFailure, proxyError, taintsConnection, type PrimaryStream, type PrimaryStreamPool } from './primary-streams.js';

export interface ForwardingOptions {
  namespace: string;
  local: SqlConnection;
  /** The namespace's read-your-writes fence: raised by forwarded programs, passed before local ones. */
  fence: ReadFence;
  /** False until the replica applied what the primary had at Hello: then reads go to the primary too. */
  caughtUp: () => boolean;
  /** The namespace's idle primary streams. */
  streams: PrimaryStreamPool;
  creds: ForwardCredentials;
  /** A forwarded program that gets no answer within this long fails (the primary is down or stuck). */
  timeoutMs: number;
  logger: Logger;
}

function lostTransaction(): SqlError {
  return proxyError('the connection to the primary was lost inside a transaction, which was rolled back');
}

/** Statements that need the primary (by their text, when they do not prepare here). */
const WRITING_KINDS = new Set(['ddl', 'dml']);

/** How long a local read waits for the replica to reach the read fence before the primary answers it instead. */
const FENCE_WAIT_MS = 1000;

export class ForwardingConnection implements ClientConnection {
  readonly #o: ForwardingOptions;
  #primary: PrimaryStream | null = null;
  /** The primary connection is inside a transaction. */
  #remoteTxn = false;
  /** The primary connection was lost inside a transaction: programs fail until the client ends it. */
  #lostTxn = false;
  /** Something ran on the primary connection that may leave state on it: never reuse it. */
  #tainted = false;
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
    return this.#o.fence.index();
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
      const settled = this.#afterLostTransaction(steps);
      if (settled) return settled;
    }
    const local = this.#o.local;
    if (!this.#mustForward(steps, opts)) {
      if (!(await this.#localIsCurrent())) {
        const answered = await this.#readOnPrimary(steps, opts);
        if (answered) return answered;
      }
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
    // a stream inside a transaction is closed (the primary rolls back); one in autocommit is reused
    if (this.#primary) this.#release(this.#primary, this.#remoteTxn || this.#tainted);
    this.#primary = null;
    this.#o.local.close();
  }

  /**
   * The primary lost this connection's transaction (its stream broke). Until the client ends it,
   * its statements fail — they must not run in autocommit as if the transaction were still there.
   * A ROLLBACK is answered as done; COMMIT fails (the transaction is gone); BEGIN starts afresh.
   */
  #afterLostTransaction(steps: readonly ProgramStep[]): StepOutcome[] | null {
    const first = steps.find((s) => 'sql' in s);
    const kind = first && 'sql' in first ? classifyStatement(first.sql).kind : null;
    if (kind === 'begin') {
      this.#lostTxn = false;
      return null;
    }
    if (kind === 'rollback' && steps.length === 1) {
      this.#lostTxn = false;
      return [{ type: 'ok', result: { columns: [], rows: [], changes: 0, lastInsertRowid: null, rowsRead: 0, rowsWritten: 0, durationMs: 0 } }];
    }
    if (kind === 'commit' || kind === 'rollback') this.#lostTxn = false;
    throw lostTransaction();
  }

  #release(stream: PrimaryStream, discard: boolean): void {
    if (discard) stream.close();
    else this.#o.streams.give(this.#o.creds, stream);
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

  /**
   * True when the local copy has everything forwarded programs were answered with (a local read
   * transaction already has its snapshot), waiting for it a little if need be.
   */
  async #localIsCurrent(): Promise<boolean> {
    if (!this.#o.local.isAutocommit) return true;
    const fence = this.#o.fence;
    if (fence.pending() === null) return true;
    return fence.reached(Math.min(FENCE_WAIT_MS, this.#o.timeoutMs));
  }

  /**
   * A read the replica is not current enough for (it lost the primary's log stream, or applies
   * slowly) goes to the primary, so it does not see an older state than the client was told of.
   * If the primary does not answer either, reads must go on: the fence is given up (they answer
   * from the local copy until it catches up) and null is returned.
   */
  async #readOnPrimary(steps: readonly ProgramStep[], opts: RunProgramOptions): Promise<StepOutcome[] | null> {
    const fence = this.#o.fence.pending();
    try {
      return await this.#forward(steps, opts);
    } catch (err) {
      if (this.#remoteTxn || this.#lostTxn) throw err;
      this.#o.fence.abandon();
      this.#o.logger.warn(
        { namespace: this.#o.namespace, fence: fence?.toString(), err },
        'the replica has not applied what it answered, and the primary does not answer reads: reads answer from the replica until it catches up',
      );
      return null;
    }
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
    if (this.#primary?.broken) {
      // it broke while idle inside a transaction (an idle autocommit stream is in the pool, not here)
      this.#primary.close();
      this.#primary = null;
      if (this.#remoteTxn) {
        this.#remoteTxn = false;
        this.#lostTxn = true;
        throw lostTransaction();
      }
    }
    const stream = (this.#primary ??= this.#o.streams.take(this.#o.creds));
    if (taintsConnection(steps)) this.#tainted = true;
    const wasTxn = this.#remoteTxn;
    let result: ProgramReadResult;
    try {
      result = await stream.exec(steps, this.#o.timeoutMs);
    } catch (err) {
      if (stream.broken) {
        this.#primary = null;
        stream.close();
        if (wasTxn) {
          this.#remoteTxn = false;
          this.#lostTxn = true;
        }
      }
      throw callFailure(err);
    }
    this.#remoteTxn = !result.isAutocommit;
    if (!this.#remoteTxn && !this.#tainted) {
      // back in autocommit: the stream serves the next caller with the same credentials
      this.#primary = null;
      this.#release(stream, false);
    }
    if (result.lastFrameNo !== null) this.#o.fence.raise(result.lastFrameNo);
    result.outcomes.forEach((o, i) => opts.onStep?.(i, o));
    return result.outcomes;
  }
}
