/**
 * One error hierarchy for the whole suite. Every error carries a stable `code`; each boundary
 * (Hrana, HTTP status, gRPC status, CLI exit code) translates these codes in one place.
 */
export class LibsqlctlError extends Error {
  readonly code: string;
  readonly hint: string | undefined;

  constructor(code: string, message: string, options?: { cause?: unknown; hint?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = options?.hint;
  }
}

/** Invalid flags, environment variables or configuration files. */
export class ConfigError extends LibsqlctlError {}

/** Something the caller asked for does not exist. */
export class NotFoundError extends LibsqlctlError {}
