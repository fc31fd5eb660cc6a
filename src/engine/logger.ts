/**
 * The one logger of the server (pino, also handed to fastify as its logger instance), and the error
 * boundary every timer and stream callback of the engine runs behind: an exception there is logged,
 * never thrown into the event loop (it would kill the process after writes were acknowledged).
 */
import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

export interface LoggerOptions {
  /** pino level name (`info` by default). */
  level?: string;
  /** Where lines go (stderr by default). */
  destination?: DestinationStream;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const destination = opts.destination ?? pino.destination({ fd: 2, sync: true });
  return pino({ level: opts.level ?? 'info', base: { name: 'libsqlctl' } }, destination);
}

/** A logger that drops everything (engine tests that do not look at logs). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Runs `fn`; an exception is logged as `what failed` and swallowed. */
export function guard(logger: Logger, what: string, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    logger.error({ err }, `${what} failed: ${errorMessage(err)}`);
  }
}

/** `guard` for async work: a rejection is logged, never left unhandled. */
export function guardAsync(logger: Logger, what: string, fn: () => Promise<void>): Promise<void> {
  return fn().catch((err: unknown) => logger.error({ err }, `${what} failed: ${errorMessage(err)}`));
}

/** setTimeout behind an error boundary, unref'd (timers never keep the process alive). */
export function guardedTimeout(logger: Logger, what: string, ms: number, fn: () => void): NodeJS.Timeout {
  const t = setTimeout(() => guard(logger, what, fn), ms);
  t.unref();
  return t;
}

/** setInterval behind an error boundary, unref'd. */
export function guardedInterval(logger: Logger, what: string, ms: number, fn: () => void): NodeJS.Timeout {
  const t = setInterval(() => guard(logger, what, fn), ms);
  t.unref();
  return t;
}
