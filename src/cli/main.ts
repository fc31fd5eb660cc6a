import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Interfaces } from '@oclif/core';

/**
 * The CLI: oclif's `execute`, except that `libsqlctl -V` / `--version` print `libsqlctl <version>`
 * (sqld's form) instead of oclif's user agent. `dir` is the entry script's `import.meta.url`.
 *
 * Start-up: without a manifest oclif imports every command module to learn its flags, and `serve`
 * brings the whole engine. A command line that names one command (and asks for no help) only
 * needs that one, so oclif is told to discover just its file; `-V` needs none. Anything else
 * (help, topics, unknown words) loads them all, as before. A plain `bottomless restore` command
 * line does not load oclif at all (fast-restore.ts).
 */
export async function main(argv: string[], dir: string): Promise<void> {
  // A plain `bottomless restore` runs without oclif (fast-restore.ts says which command lines are plain).
  if (argv[0] === 'bottomless' && argv[1] === 'restore' && (await (await import('./fast-restore.js')).tryPlainRestore(argv.slice(2)))) return;
  const [{ Config, execute, handle, ux }, { isVersionRequest, versionLine }] = await Promise.all([import('@oclif/core'), import('./version.js')]);
  let config: Interfaces.Config;
  try {
    config = await Config.load(narrowedLoad(argv, dir) ?? dir);
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

const HELP_WORDS = new Set(['-h', '--help', 'help']);
/** A glob no command file matches. */
const NO_COMMANDS = '.none';

/** Config options that discover only the command `argv` runs, or null when that is not clear. */
function narrowedLoad(argv: readonly string[], dir: string): Interfaces.LoadOptions | null {
  try {
    const root = packageRoot(path.dirname(fileURLToPath(dir)));
    if (root === null) return null;
    const pjson = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as Interfaces.PJSON;
    const oclif = pjson.oclif;
    const target = oclif.commands;
    if (typeof target !== 'string' || argv.some((a) => HELP_WORDS.has(a))) return null;
    const first = argv[0];
    const versionFlags = ['--version', ...(oclif.additionalVersionFlags ?? [])];
    let file: string | null;
    if (first !== undefined && versionFlags.includes(first)) file = NO_COMMANDS;
    else file = commandFile(path.resolve(root, target), argv);
    if (file === null) return null;
    return { root, pjson: { ...pjson, oclif: { ...oclif, commands: { strategy: 'pattern', target, globPatterns: [file] } } } };
  } catch {
    return null;
  }
}

/** The command file (relative to `commandsDir`) the leading words of `argv` name: the longest match of at most two words. */
function commandFile(commandsDir: string, argv: readonly string[]): string | null {
  const words: string[] = [];
  for (const a of argv.slice(0, 2)) {
    if (!/^[a-z][a-z0-9-]*$/.test(a)) break;
    words.push(a);
  }
  for (let n = words.length; n > 0; n--) {
    const rel = `${words.slice(0, n).join('/')}.js`;
    if (fs.statSync(path.join(commandsDir, rel), { throwIfNoEntry: false })?.isFile() === true) return rel;
  }
  return null;
}

/** The nearest directory from `from` up that holds a package.json. */
function packageRoot(from: string): string | null {
  for (let d = from; ; d = path.dirname(d)) {
    if (fs.existsSync(path.join(d, 'package.json'))) return d;
    if (path.dirname(d) === d) return null;
  }
}
