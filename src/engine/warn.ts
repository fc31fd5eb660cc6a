/** Operational warnings of the engine (never thrown, never silent): one line on stderr. */
export function warn(message: string): void {
  process.stderr.write(`[libsqlctl] ${message}\n`);
}
