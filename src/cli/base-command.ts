import { Command, Errors, Flags, type Interfaces } from '@oclif/core';
import { ConfigError, LibsqlctlError } from '../errors.js';
import { describeParseFailure, helpHint, UsageError, usageLines } from './usage.js';
import { versionFlag } from './version.js';

/** Exit codes: 2 for bad flags or configuration, 1 for everything else that went wrong. */
export function exitCodeFor(err: LibsqlctlError): number {
  return err instanceof ConfigError ? 2 : 1;
}

type FlagOutput = Interfaces.OutputFlags<Interfaces.FlagInput>;
type ArgOutput = Interfaces.OutputArgs<Interfaces.ArgInput>;

/**
 * The one place domain errors become CLI output: `Error: <message>` and, when known, `Try: <hint>`
 * on stderr, and a stable exit code — no stack traces for errors we understand. A command line
 * the parser rejects (unknown flag, bad or missing value) is one line naming the problem and the
 * command's `--help`, exit 2.
 */
export abstract class BaseCommand extends Command {
  /** `-h, --help` and `-V, --version` on every command, as sqld has them. */
  static override baseFlags = {
    help: Flags.help({ char: 'h', description: 'Print help.', helpGroup: 'GLOBAL' }),
    version: versionFlag,
  };

  protected override async parse<F extends FlagOutput, B extends FlagOutput, A extends ArgOutput>(
    options?: Interfaces.Input<F, B, A>,
    argv?: string[],
  ): Promise<Interfaces.ParserOutput<F, B, A>> {
    try {
      return await super.parse(options, argv);
    } catch (err) {
      // ExitError: a flag that did its job (`--help`, `--version`); LibsqlctlError: a flag's own check.
      if (err instanceof Errors.ExitError || err instanceof LibsqlctlError || !(err instanceof Errors.CLIError)) throw err;
      throw new UsageError(describeParseFailure(err.message), helpHint(this.config, this.id), { cause: err });
    }
  }

  protected override async catch(err: Error & { exitCode?: number }): Promise<unknown> {
    if (err instanceof UsageError) {
      this.logToStderr(usageLines(err.message, err.hint));
      this.exit(exitCodeFor(err));
    }
    if (err instanceof LibsqlctlError) {
      this.logToStderr(`Error: ${err.message}`);
      if (err.hint) this.logToStderr(`Try: ${err.hint}`);
      this.exit(exitCodeFor(err));
    }
    return super.catch(err);
  }
}
