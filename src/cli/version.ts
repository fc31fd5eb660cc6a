import { Flags, ux, type Interfaces } from '@oclif/core';

type Config = Interfaces.Config;

/** `libsqlctl <version>`, as `sqld -V` prints `sqld <version>` (the version is package.json's). */
export function versionLine(config: Config): string {
  return `${config.bin} ${config.version}`;
}

/** `--version` and the `additionalVersionFlags` of package.json's `oclif` section (`-V`). */
export function versionFlagNames(config: Config): string[] {
  return [...new Set(['--version', ...(config.pjson.oclif.additionalVersionFlags ?? [])])];
}

/** True when the command line asks for the version before anything else (`libsqlctl -V …`), as oclif decides. */
export function isVersionRequest(argv: readonly string[], config: Config): boolean {
  const first = argv[0];
  return first !== undefined && versionFlagNames(config).includes(first);
}

/** `-V, --version` of every command (`libsqlctl serve -V` is `sqld -V`): prints versionLine, exits 0. */
export const versionFlag = Flags.boolean({
  char: 'V',
  description: 'Print version.',
  helpGroup: 'GLOBAL',
  parse(_input, ctx) {
    ux.stdout(versionLine(ctx.config));
    return ctx.exit(0);
  },
});
