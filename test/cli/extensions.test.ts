/**
 * `serve --extensions-path <dir>` / SQLD_EXTENSIONS_PATH (sqld's): the extensions listed in
 * `<dir>/trusted.lst` with their sha256 are checked at start-up and loaded into every client
 * connection; unlisted files are never loaded; SQL's load_extension() stays refused. Extensions are
 * real shared objects compiled here with `cc`; the servers are real CLI processes.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConstantExtension, requireCc, sha256Of } from '../helpers/c-extension.js';
import { bannerUrl, killAllChildServers, spawnCli, STACK_FRAME_RE, within, type CliProcess } from '../helpers/child-server.js';
import { isObj, pipeline } from '../helpers/pipeline.js';

const STEP_MS = 15_000;

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'libsqlctl-extensions-'));
const build = path.join(scratch, 'build');
/** Defines libsqlctl_answer() = 42. */
let answerSo = '';
/** Defines libsqlctl_other() = 7; never listed. */
let otherSo = '';

beforeAll(async () => {
  requireCc();
  fs.mkdirSync(build);
  [answerSo, otherSo] = await Promise.all([
    buildConstantExtension(build, 'answer.so', 'libsqlctl_answer', 42),
    buildConstantExtension(build, 'other.so', 'libsqlctl_other', 7),
  ]);
});
afterAll(async () => {
  await killAllChildServers();
  fs.rmSync(scratch, { recursive: true, force: true });
});

let dirs = 0;
/** A fresh directory under the scratch directory. */
function freshDir(prefix: string): string {
  dirs += 1;
  const dir = path.join(scratch, `${prefix}-${dirs}`);
  fs.mkdirSync(dir);
  return dir;
}

/** An extensions directory holding `files` (name → source path) and a trusted.lst with `list`. */
function extensionsDir(files: Record<string, string>, list: string): string {
  const dir = freshDir('ext');
  for (const [name, source] of Object.entries(files)) fs.copyFileSync(source, path.join(dir, name));
  fs.writeFileSync(path.join(dir, 'trusted.lst'), list);
  return dir;
}

interface Started {
  child: CliProcess;
  url: string;
}

/** `serve` in a fresh working directory (so its data directory is its own), resolved at the banner. */
async function serve(args: readonly string[], env: Record<string, string> = {}): Promise<Started> {
  const child = spawnCli(['serve', '--http-listen-addr', '127.0.0.1:0', ...args], { cwd: freshDir('cwd'), env });
  return { child, url: await bannerUrl(child) };
}

type Outcome = { value: unknown } | { error: string };

/** Runs one statement on a new Hrana stream: the first column of the first row, or the statement's error. */
async function query(url: string, sql: string): Promise<Outcome> {
  const { status, body, raw } = await pipeline(url, [{ type: 'execute', stmt: { sql } }]);
  expect(status, raw).toBe(200);
  const result = isObj(body) && Array.isArray(body.results) ? (body.results[0] as unknown) : null;
  if (!isObj(result)) throw new Error(`unexpected pipeline answer: ${raw}`);
  if (result.type === 'error' && isObj(result.error)) return { error: String(result.error.message) };
  const rows = isObj(result.response) && isObj(result.response.result) ? result.response.result.rows : null;
  if (!Array.isArray(rows)) throw new Error(`unexpected pipeline answer: ${raw}`);
  const first = (rows[0] as unknown[] | undefined)?.[0];
  return { value: isObj(first) ? first.value : first };
}

/** The statement's error message (or a text saying there was none, which matches no expected error). */
function errorOf(outcome: Outcome): string {
  return 'error' in outcome ? outcome.error : `no error: the statement answered ${JSON.stringify(outcome.value)}`;
}

function nonEmptyLines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim() !== '');
}

async function stop(child: CliProcess): Promise<void> {
  expect(child.signal('SIGTERM')).toBe(true);
  expect(await within(child.exited, STEP_MS, `exit of server ${child.pid} after SIGTERM`), child.stderr()).toEqual({ code: 0, signal: null });
}

describe('serve --extensions-path', () => {
  it('loads the listed extension into client connections, never an unlisted one, and refuses SQL load_extension()', async () => {
    // listed: answer.so; in the directory but unlisted: other.so
    const listed = extensionsDir({ 'answer.so': answerSo, 'other.so': otherSo }, `${sha256Of(answerSo)}  answer.so\n`);
    // only an unlisted extension (an empty list, blank lines only), given through sqld's variable
    const unlisted = extensionsDir({ 'answer.so': answerSo }, '\n\n');
    const [a, b] = await Promise.all([serve(['-e', listed]), serve([], { SQLD_EXTENSIONS_PATH: unlisted })]);

    // several streams at once: each new SQLite connection gets the extension
    const answers = await Promise.all([1, 2, 3].map(() => query(a.url, 'SELECT libsqlctl_answer()')));
    expect(answers).toEqual([{ value: '42' }, { value: '42' }, { value: '42' }]);
    expect(errorOf(await query(a.url, 'SELECT libsqlctl_other()'))).toMatch(/no such function: libsqlctl_other/);
    expect(errorOf(await query(b.url, 'SELECT libsqlctl_answer()'))).toMatch(/no such function: libsqlctl_answer/);

    // load_extension() from SQL is refused, also for a file that exists and is even trusted
    for (const { url, file } of [
      { url: a.url, file: path.join(listed, 'other.so') },
      { url: a.url, file: path.join(listed, 'answer.so') },
      { url: b.url, file: path.join(unlisted, 'answer.so') },
    ]) {
      expect(errorOf(await query(url, `SELECT load_extension('${file}')`)), file).toMatch(/not authorized/);
    }
    expect(errorOf(await query(a.url, 'SELECT libsqlctl_other()'))).toMatch(/no such function: libsqlctl_other/);
    expect(errorOf(await query(b.url, 'SELECT libsqlctl_answer()'))).toMatch(/no such function: libsqlctl_answer/);

    // the variable is read, so it is not named among the ignored ones
    expect(b.child.stderr()).not.toMatch(/SQLD_EXTENSIONS_PATH/);
    await Promise.all([stop(a.child), stop(b.child)]);
  });

  it('refuses to start when trusted.lst does not hold: exit 2, one Error line naming the file, nothing created', async () => {
    const good = sha256Of(answerSo);
    const wrong = sha256Of(otherSo);
    const cases = [
      { what: 'hash mismatch', dir: extensionsDir({ 'answer.so': answerSo }, `${wrong}  answer.so\n`), error: /trusted extension \S*answer\.so does not match its sha256 in trusted\.lst line 1 \(listed [0-9a-f]{64}, the file has [0-9a-f]{64}\)$/ },
      { what: 'missing file', dir: extensionsDir({ 'answer.so': answerSo }, `${good}  answer.so\n${good}  gone.so\n`), error: /trusted extension \S*gone\.so \(trusted\.lst line 2\) is missing$/ },
      { what: 'malformed line', dir: extensionsDir({ 'answer.so': answerSo }, `${good}  answer.so\nnot-a-hash answer.so\n`), error: /\S*trusted\.lst line 2 is malformed: expected "<sha256 in hex> <file name>"/ },
      { what: 'path outside the directory', dir: extensionsDir({}, `${good}  ../answer.so\n`), error: /\S*trusted\.lst line 1 is malformed: `\.\.\/answer\.so` must be the name of a file in the directory itself/ },
      { what: 'no trusted.lst', dir: freshDir('ext-empty'), error: /cannot read \S*trusted\.lst: / },
      { what: 'unreadable file', dir: extensionsDir({}, `${good}  sub\n`), error: /cannot read trusted extension \S*sub: / },
    ].map((c) => {
      if (c.what === 'unreadable file') fs.mkdirSync(path.join(c.dir, 'sub'));
      const cwd = freshDir('cwd');
      return { ...c, cwd, child: spawnCli(['serve', '--http-listen-addr', '127.0.0.1:0', '--extensions-path', c.dir], { cwd }) };
    });
    for (const { what, error, cwd, child } of cases) {
      const exit = await within(child.exited, STEP_MS, `exit of serve with ${what}`);
      expect(exit, child.stderr()).toEqual({ code: 2, signal: null });
      const lines = nonEmptyLines(child.stderr());
      expect(lines, what).toEqual([expect.stringMatching(/^Error: --extensions-path: /)]);
      expect(lines[0], what).toMatch(error);
      expect(child.stderr()).not.toMatch(STACK_FRAME_RE);
      expect(fs.readdirSync(cwd), `nothing created with ${what}`).toEqual([]);
    }
  });

  it('a trusted extension that fails to load fails the request with a clear error and a log line; the server keeps serving', async () => {
    const broken = path.join(build, 'broken.so');
    fs.writeFileSync(broken, 'not a shared object\n');
    const dir = extensionsDir({ 'broken.so': broken }, `${sha256Of(broken)} broken.so\n`);
    const { child, url } = await serve(['--extensions-path', dir]);
    for (let i = 0; i < 2; i += 1) {
      const { status, body, raw } = await pipeline(url, [{ type: 'execute', stmt: { sql: 'SELECT 1' } }]);
      expect(status, raw).toBe(500);
      expect(body).toEqual({ error: 'The trusted extension broken.so could not be loaded into a new connection' });
    }
    expect((await fetch(`${url}/health`, { signal: AbortSignal.timeout(STEP_MS) })).status).toBe(200);
    await stop(child);
    const errors = nonEmptyLines(child.stderr())
      .map((l) => JSON.parse(l) as { level: number; msg: string; extension?: string; namespace?: string })
      .filter((l) => l.level >= 50);
    expect(errors.length, child.stderr()).toBeGreaterThanOrEqual(2);
    for (const e of errors) {
      expect(e.msg).toMatch(/^cannot load the trusted extension \S*broken\.so: /);
      expect(e.extension).toBe(path.join(dir, 'broken.so'));
      expect(e.namespace).toBe('default');
    }
  });
});
