import { Config, execute, handle, ux } from '@oclif/core';
import { isVersionRequest, versionLine } from './version.js';

/**
 * The CLI: oclif's `execute`, except that `libsqlctl -V` / `--version` print `libsqlctl <version>`
 * (sqld's form) instead of oclif's user agent. `dir` is the entry script's `import.meta.url`.
 */
export async function main(argv: string[], dir: string): Promise<void> {
  let config: Config;
  try {
    config = await Config.load(dir);
  } catch (err) {
    await handle(err as Error);
    return;
  }
  if (isVersionRequest(argv, config)) {
    ux.stdout(versionLine(config));
    return;
  }
  await execute({ args: argv, loadOptions: config });
}
