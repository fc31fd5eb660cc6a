/**
 * The one logger of the server (pino, also handed to fastify as its logger instance), and the error
 * boundary every timer and stream callback of the engine runs behind: an exception there is logged,
 * never thrown into the event loop (it would kill the process after writes were acknowledged).
 */
import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';
import { prettyDestination } from './log-format.js';

export type Logger = PinoLogger;

export interface LoggerOptions {
  /** pino level name, or `off` (`info` by default). */
  level?: string;
  /** Where lines go (stderr by default: JSON lines, or one line of text each when stderr is a terminal). */
  destination?: DestinationStream;
}

/** Our level names (`off`, as sqld's RUST_LOG has it) as pino's (`silent`). */
export function pinoLevel(level: string): string {
  return level === 'off' ? 'silent' : level;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  let destination = opts.destination;
  if (destination === undefined) {
    const stderr = pino.destination({ fd: 2, sync: true });
    destination = process.stderr.isTTY ? prettyDestination(stderr) : stderr;
  }
  return pino({ level: pinoLevel(opts.level ?? 'info'), base: { name: 'libsqlctl' } }, destination);
}

/** The more severe of two pino levels (a child logger that must never be more verbose than `min`). */
export function atLeast(logger: Logger, min: 'warn' | 'error'): string {
  return logger.levelVal >= logger.levels.values[min]! ? logger.level : min;
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
