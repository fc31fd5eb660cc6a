/**
 * An in-memory pino destination: `new LogCapture().logger` is a real engine logger (createLogger)
 * whose JSON lines are parsed and kept, so tests can check what was logged and at which level.
 */
import { createLogger, type Logger } from '../../src/engine/logger.js';

/** pino's numeric levels. */
export const LEVEL = { debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const;

export interface LogLine {
  level: number;
  msg: string;
  /** pino's error serializer output, when an `err` was logged. */
  err?: { type?: string; message?: string; code?: string; stack?: string };
  [key: string]: unknown;
}

export class LogCapture {
  readonly lines: LogLine[] = [];
  readonly logger: Logger;

  constructor(level = 'debug') {
    this.logger = createLogger({ level, destination: { write: (chunk: string) => this.collect(chunk) } });
  }

  /** Lines at `level` or above whose message matches `pattern`. */
  find(pattern: RegExp, level: number = LEVEL.debug): LogLine[] {
    return this.lines.filter((l) => l.level >= level && pattern.test(l.msg));
  }

  /** Lines at error level or above. */
  errors(): LogLine[] {
    return this.lines.filter((l) => l.level >= LEVEL.error);
  }

  clear(): void {
    this.lines.length = 0;
  }

  private collect(chunk: string): void {
    for (const text of chunk.split('\n')) {
      if (text.trim() === '') continue;
      this.lines.push(JSON.parse(text) as LogLine);
    }
  }
}
