import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stripVTControlCharacters } from 'node:util';
import { describe, expect, it } from 'vitest';
import { cliScratch, spawnCli, STACK_FRAME_RE, within, type ExitInfo } from '../helpers/child-server.js';

/**
 * `-h`/`--help`, `-V`/`--version` and `help [COMMAND]` where sqld has them, and command lines the
 * parser rejects: the real CLI (`node bin/run.js …`) as a child process in a temporary directory.
 */

const STEP_MS = 15_000;
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const VERSION = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

const scratch = cliScratch('libsqlctl-help-');


interface Outcome {
  args: string[];
  exit: ExitInfo;
  stdout: string;
  stderr: string;
}

/** Runs `libsqlctl <args>` to its end (bounded); DEBUG would make oclif print stack traces on purpose. */
async function cli(args: string[]): Promise<Outcome> {
  const child = spawnCli(args, { cwd: scratch, env: { DEBUG: undefined } });
  const exit = await within(child.exited, STEP_MS, `exit of libsqlctl ${args.join(' ')}; stderr:\n${child.stderr()}`);
  return { args, exit, stdout: stripVTControlCharacters(child.stdout()), stderr: stripVTControlCharacters(child.stderr()) };
}

const runAll = (forms: string[][]): Promise<Outcome[]> => Promise.all(forms.map(cli));
const what = (o: Outcome): string => `libsqlctl ${o.args.join(' ')}\nstdout:\n${o.stdout}\nstderr:\n${o.stderr}`;

/** Exit 0, nothing on stderr. */
function expectSuccess(o: Outcome): void {
  expect.soft(o.exit, `exit of ${what(o)}`).toEqual({ code: 0, signal: null });
  expect.soft(o.stderr, `stderr of ${what(o)}`).toBe('');
}

/** Exit 2, nothing on stdout, exactly one stderr line matching `line`, no stack trace. */
/** `Error: <error>` and `Try: <hint>`: the two lines every start-up error prints. */
function expectUsageError(o: Outcome, error: RegExp, hint: string): void {
  expect.soft(o.exit, `exit of ${what(o)}`).toEqual({ code: 2, signal: null });
  expect.soft(o.stdout, `stdout of ${what(o)}`).toBe('');
  expect.soft(o.stderr.endsWith('\n'), `stderr ends with a newline: ${what(o)}`).toBe(true);
  const lines = o.stderr.replace(/\n$/, '').split('\n');
  expect.soft(lines, `stderr lines of ${what(o)}`).toHaveLength(2);
  expect.soft(lines[0], what(o)).toMatch(error);
  expect.soft(lines[1], what(o)).toBe(`Try: ${hint}`);
  expect.soft(o.stderr, `stack trace in ${what(o)}`).not.toMatch(STACK_FRAME_RE);
}

describe('help and version', () => {
  it('-h, --help, help and no arguments print the root usage on stdout, exit 0', async () => {
    const outcomes = await runAll([['-h'], ['--help'], ['help'], []]);
    for (const o of outcomes) {
      expectSuccess(o);
      expect.soft(o.stdout, what(o)).toMatch(/^USAGE\n\s+\$ libsqlctl \[COMMAND\]$/m);
      expect.soft(o.stdout, `commands listed: ${what(o)}`).toMatch(/^COMMANDS\n(?:.*\n)*?\s+serve\s+Run a libSQL server/m);
      expect.soft(o.stdout, `commands listed: ${what(o)}`).toMatch(/^\s+help\s+\S/m);
    }
    const first = outcomes[0]?.stdout;
    for (const o of outcomes.slice(1)) expect.soft(o.stdout, `same usage as libsqlctl -h: ${what(o)}`).toBe(first);
  });

  it('serve -h, serve --help and help serve print the usage of serve on stdout, exit 0', async () => {
    const outcomes = await runAll([
      ['serve', '-h'],
      ['serve', '--help'],
      ['help', 'serve'],
      ['serve', '--db-path', 'elsewhere', '--help'],
    ]);
    for (const o of outcomes) {
      expectSuccess(o);
      expect.soft(o.stdout, what(o)).toMatch(/^USAGE\n\s+\$ libsqlctl serve /m);
      expect.soft(o.stdout, what(o)).toMatch(/^\s+-d, --db-path=<value>$/m);
      expect.soft(o.stdout, what(o)).toMatch(/--http-listen-addr=<value>/);
      expect.soft(o.stdout, what(o)).toMatch(/^\s+-h, --help\s+\S/m);
      expect.soft(o.stdout, what(o)).toMatch(/^\s+-V, --version\s+\S/m);
      expect.soft(o.stdout, `no banner: ${what(o)}`).not.toMatch(/listening on/);
    }
    const first = outcomes[0]?.stdout;
    for (const o of outcomes.slice(1)) expect.soft(o.stdout, `same usage as libsqlctl serve -h: ${what(o)}`).toBe(first);
    expect(fs.existsSync(path.join(scratch, 'data.sqld')), 'help started no server').toBe(false);
    expect(fs.existsSync(path.join(scratch, 'elsewhere')), 'help started no server').toBe(false);
  });

  it("-V and --version, on the top level and on serve, print `libsqlctl <package.json's version>`, exit 0", async () => {
    expect(VERSION).toMatch(/^\d+\.\d+\.\d+/);
    const outcomes = await runAll([['-V'], ['--version'], ['serve', '-V'], ['serve', '--version']]);
    for (const o of outcomes) {
      expectSuccess(o);
      expect.soft(o.stdout, what(o)).toBe(`libsqlctl ${VERSION}\n`);
    }
    expect(fs.existsSync(path.join(scratch, 'data.sqld')), 'serve --version started no server').toBe(false);
  });
});

describe('command lines the parser rejects: an Error: line and a Try: hint, exit 2', () => {
  // A command line accepted by mistake must not bind the default port 8080.
  const serve = (...args: string[]): string[] => ['serve', '--http-listen-addr', '127.0.0.1:0', ...args];

  it('an unknown flag', async () => {
    const [serveFlag, rootFlag] = await runAll([serve('--no-such-flag'), ['--no-such-flag']]);
    expectUsageError(serveFlag!, /^Error: .*--no-such-flag\b/, 'libsqlctl serve --help');
    expectUsageError(rootFlag!, /^Error: .*--no-such-flag\b/, 'libsqlctl --help');
  });

  it('an unknown command, and a command given arguments it does not take', async () => {
    const [command, helpCommand, argument] = await runAll([['no-such-command'], ['help', 'no-such-command'], serve('extra')]);
    expectUsageError(command!, /^Error: .*\bno-such-command\b/, 'libsqlctl --help');
    expectUsageError(helpCommand!, /^Error: .*\bno-such-command\b/, 'libsqlctl help');
    expectUsageError(argument!, /^Error: .*\bextra\b/, 'libsqlctl serve --help');
  });

  it('a flag with a value oclif rejects, or without its value', async () => {
    const [notInteger, missing] = await runAll([serve('--max-concurrent-connections', 'abc'), serve('--db-path')]);
    expectUsageError(notInteger!, /^Error: .*--max-concurrent-connections\b.*\babc\b/, 'libsqlctl serve --help');
    expectUsageError(missing!, /^Error: .*--db-path\b/, 'libsqlctl serve --help');
    expect(fs.existsSync(path.join(scratch, 'data.sqld')), 'a data directory created despite the bad command line').toBe(false);
  });
});
