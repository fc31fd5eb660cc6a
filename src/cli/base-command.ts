import { Command } from '@oclif/core';
import { ConfigError, LibsqlctlError } from '../errors.js';

/** Exit codes: 2 for bad flags or configuration, 1 for everything else that went wrong. */
export function exitCodeFor(err: LibsqlctlError): number {
  return err instanceof ConfigError ? 2 : 1;
}

/**
 * The one place domain errors become CLI output: `Error: <message>` and, when known, `Try: <hint>`
 * on stderr, and a stable exit code — no stack traces for errors we understand.
 */
export abstract class BaseCommand extends Command {
  protected override async catch(err: Error & { exitCode?: number }): Promise<unknown> {
    if (err instanceof LibsqlctlError) {
      this.logToStderr(`Error: ${err.message}`);
      if (err.hint) this.logToStderr(`Try: ${err.hint}`);
      this.exit(exitCodeFor(err));
    }
    return super.catch(err);
  }
}
