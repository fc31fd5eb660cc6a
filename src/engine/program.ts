/**
 * A program: statements with conditions, run on one connection (a Hrana batch, a legacy `POST /`
 * body, a proxied `proxy.Program`). The conditions are Hrana's (spec §4.6): `error` means "not ok",
 * so a skipped step counts as failed. A replica forwards whole programs to its primary; a primary's
 * Proxy service runs the programs it receives with the same code as its own clients'.
 */
import type { SqlError } from './sql-error.js';
import type { ExecOptions } from './connection.js';
import type { ExecResult, SqlArgs } from './values.js';

export type ProgramCond =
  | { type: 'ok'; step: number }
  | { type: 'error'; step: number }
  | { type: 'not'; cond: ProgramCond }
  | { type: 'and'; conds: ProgramCond[] }
  | { type: 'or'; conds: ProgramCond[] }
  | { type: 'is_autocommit' };

/**
 * One step. `failed` is a step that could not even be built (an unknown `sql_id`): it reports that
 * error as its outcome when its condition lets it run.
 */
export type ProgramStep =
  | { cond: ProgramCond | null; sql: string; args: SqlArgs }
  | { cond: ProgramCond | null; failed: Error };

export type StepOutcome = { type: 'ok'; result: ExecResult } | { type: 'error'; error: Error } | { type: 'skipped' };

/** What runs SQL statements: a local SqlConnection, or on a replica the primary's connection. */
export interface StatementRunner {
  readonly isAutocommit: boolean;
  execute(sql: string, args: SqlArgs, opts: ExecOptions): Promise<ExecResult>;
}

/**
 * Errors that are a step's outcome rather than the program's failure. Anything else (a permission
 * failure, a closed stream, a bug) stops the program and propagates.
 */
export type StepErrorTest = (err: unknown) => err is SqlError | Error;

export interface RunProgramOptions extends ExecOptions {
  isStepError: StepErrorTest;
  /** Called after each step (the cursor transport streams steps as they finish). */
  onStep?: (index: number, outcome: StepOutcome) => void;
}

export function evalCond(cond: ProgramCond, outcomes: readonly StepOutcome[], isAutocommit: () => boolean): boolean {
  switch (cond.type) {
    case 'ok':
      return outcomes[cond.step]?.type === 'ok';
    case 'error':
      return outcomes[cond.step]?.type !== 'ok';
    case 'not':
      return !evalCond(cond.cond, outcomes, isAutocommit);
    case 'and':
      return cond.conds.every((c) => evalCond(c, outcomes, isAutocommit));
    case 'or':
      return cond.conds.some((c) => evalCond(c, outcomes, isAutocommit));
    case 'is_autocommit':
      return isAutocommit();
  }
}

/** Runs `steps` in order on `runner`, each only if its condition holds. */
export async function runProgram(runner: StatementRunner, steps: readonly ProgramStep[], opts: RunProgramOptions): Promise<StepOutcome[]> {
  const outcomes: StepOutcome[] = [];
  const { isStepError, onStep, ...exec } = opts;
  for (const [i, step] of steps.entries()) {
    exec.signal?.throwIfAborted();
    let outcome: StepOutcome;
    if (step.cond !== null && !evalCond(step.cond, outcomes, () => runner.isAutocommit)) {
      outcome = { type: 'skipped' };
    } else if ('failed' in step) {
      outcome = { type: 'error', error: step.failed };
    } else {
      try {
        outcome = { type: 'ok', result: await runner.execute(step.sql, step.args, exec) };
      } catch (err) {
        if (!isStepError(err)) throw err;
        outcome = { type: 'error', error: err };
      }
    }
    outcomes.push(outcome);
    onStep?.(i, outcome);
  }
  return outcomes;
}

/** A condition's step references must point at earlier steps. */
export function condRefsValid(cond: ProgramCond, index: number): boolean {
  switch (cond.type) {
    case 'ok':
    case 'error':
      return Number.isInteger(cond.step) && cond.step >= 0 && cond.step < index;
    case 'not':
      return condRefsValid(cond.cond, index);
    case 'and':
    case 'or':
      return cond.conds.every((c) => condRefsValid(c, index));
    case 'is_autocommit':
      return true;
  }
}
