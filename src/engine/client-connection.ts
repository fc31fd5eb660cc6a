/**
 * What the client protocols (Hrana, legacy HTTP) run SQL on: a SqlConnection on a primary; on a
 * replica, a connection that runs reads locally and sends writes and transactions to the primary
 * (src/server/replication/forwarding-connection.ts). Protocol code never asks which one it has.
 */
import type { MaybePromise } from '../maybe-async.js';
import type { ExecOptions } from './connection.js';
import type { ProgramStep, RunProgramOptions, StatementRunner, StepOutcome } from './program.js';
import type { RowStream } from './row-stream.js';
import type { ExecResult, SqlArgs, SqlColumn } from './values.js';

export interface StatementDescription {
  params: (string | null)[];
  columns: SqlColumn[];
  isExplain: boolean;
  isReadonly: boolean;
}

export interface ClientConnection extends StatementRunner {
  readonly isClosed: boolean;
  /** `execute`, synchronously where nothing has to wait (a primary's connection: SqlConnection.executeNow). */
  executeNow?(sql: string, args: SqlArgs, opts: ExecOptions): MaybePromise<ExecResult>;
  /** True once (then false) after the engine rolled back this connection's transaction for holding the write lock too long. */
  takeTimedOut(): boolean;
  /** Prepares `sql` locally without running it (throws SqlError when it does not prepare). */
  describe(sql: string): StatementDescription;
  /**
   * A read-only statement's rows a piece at a time (cursors); other statements run whole. Only
   * where rows are read locally (a primary's connection); cursors run whole programs otherwise.
   */
  openRows?(sql: string, args: SqlArgs, opts: ExecOptions): Promise<{ result: ExecResult } | { rows: RowStream }>;
  /** Runs a whole program: on a replica, locally or on the primary as one unit. */
  runProgram(steps: readonly ProgramStep[], opts: RunProgramOptions): Promise<StepOutcome[]>;
  /** The namespace's replication index as this connection last saw it (a replica: at least its own writes'). */
  replicationIndex(): bigint | null;
  close(): void;
}

export type { ExecOptions };
