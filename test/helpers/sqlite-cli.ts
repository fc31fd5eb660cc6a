/**
 * The `sqlite3` command-line shell as an *outside process* on a database the engine serves: it takes
 * SQLite's POSIX locks like any other program, and when it believes it is alone it checkpoints and
 * deletes the WAL as it closes (design.md §4, "POSIX locks"). Found on PATH; tests that need it call
 * `requireSqliteCli()` first, which fails with a clear message when it is missing.
 */
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

const CLI = 'sqlite3';
/** Bound of one CLI run (it never waits for a human: -batch, stdin ignored). */
const RUN_TIMEOUT_MS = 10_000;
/** SQLite's busy timeout inside the CLI, so a write or checkpoint waits briefly for our locks. */
const BUSY_TIMEOUT_MS = 2000;

export interface CliRunOptions {
  /** `.timeout` for the CLI's connection (default 2 s; 0 = fail at once with SQLITE_BUSY). */
  busyTimeoutMs?: number;
  /** Bound of the whole run (default 10 s). */
  timeoutMs?: number;
}

export class SqliteCliError extends Error {
  constructor(
    message: string,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(message);
  }
}

function runCli(args: readonly string[], timeoutMs: number): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(CLI, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (!err) {
        resolve({ stdout, stderr });
        return;
      }
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        reject(new SqliteCliError(`the sqlite3 command-line shell was not found on PATH (install it, e.g. the "sqlite3" package): ${err.message}`, stdout, stderr));
        return;
      }
      const killed = (err as { killed?: boolean }).killed === true;
      const why = killed ? `killed after ${timeoutMs} ms` : `exit code ${String(code)}`;
      reject(new SqliteCliError(`sqlite3 ${args.map((a) => JSON.stringify(a)).join(' ')} failed (${why}):\n${stderr}${stdout ? `\nstdout:\n${stdout}` : ''}`, stdout, stderr));
    });
    child.stdin?.end();
  });
}

/** The CLI's version line; rejects with a clear message when `sqlite3` is not on PATH. */
export async function requireSqliteCli(): Promise<string> {
  const { stdout } = await runCli(['-version'], RUN_TIMEOUT_MS);
  return stdout.trim();
}

/**
 * Runs the CLI on `dbFile` with each of `commands` (SQL or dot-commands) as its own argument, in
 * order, stopping at the first error (`-bail`). Resolves with stdout; rejects on a non-zero exit.
 */
export async function sqliteCli(dbFile: string, commands: readonly string[], opts: CliRunOptions = {}): Promise<string> {
  const busy = opts.busyTimeoutMs ?? BUSY_TIMEOUT_MS;
  const args = ['-batch', '-bail', '-cmd', `.timeout ${busy}`, dbFile, ...commands];
  const { stdout } = await runCli(args, opts.timeoutMs ?? RUN_TIMEOUT_MS);
  return stdout;
}

/** `.dump` of `dbFile` by the CLI. */
export function cliDump(dbFile: string, opts: CliRunOptions = {}): Promise<string> {
  return sqliteCli(dbFile, ['.dump'], opts);
}

/** `SELECT count(*) FROM <table>` by the CLI. */
export async function cliCount(dbFile: string, table: string, opts: CliRunOptions = {}): Promise<number> {
  const out = (await sqliteCli(dbFile, [`SELECT count(*) FROM "${table.replaceAll('"', '""')}";`], opts)).trim();
  if (!/^\d+$/.test(out)) throw new Error(`sqlite3 count of ${table} printed ${JSON.stringify(out)}`);
  return Number(out);
}

/** One column of every row (`-list` output, one value per line) by the CLI, e.g. ids in order. */
export async function cliColumn(dbFile: string, sql: string, opts: CliRunOptions = {}): Promise<string[]> {
  const out = await sqliteCli(dbFile, [sql], opts);
  return out.split('\n').filter((line) => line !== '');
}

/** `PRAGMA integrity_check` by the CLI ("ok" when intact). */
export async function cliIntegrity(dbFile: string, opts: CliRunOptions = {}): Promise<string> {
  return (await sqliteCli(dbFile, ['PRAGMA integrity_check;'], opts)).trim();
}

/** A `sqlite3` process holding a read transaction open on a database until released. */
export interface HeldReader {
  /** The rows count the reader saw when its snapshot was taken. */
  readonly count: number;
  /** Ends the transaction and the process; resolves once it exited (rejects on a non-zero exit). */
  release(): Promise<void>;
}

/**
 * Starts `sqlite3` on `dbFile`, runs `BEGIN; SELECT count(*) FROM <table>;` and keeps the read
 * transaction (its WAL snapshot) open until `release()`. Resolves once the count was printed.
 */
export function holdReadTransaction(dbFile: string, table: string, timeoutMs = RUN_TIMEOUT_MS): Promise<HeldReader> {
  return new Promise((resolve, reject) => {
    const child = spawn(CLI, ['-batch', '-bail', dbFile], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let settled = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`sqlite3 did not start its read transaction within ${timeoutMs} ms: ${err}`));
    }, timeoutMs);
    const fail = (e: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(e);
    };
    const exited = new Promise<number | null>((res) => child.once('close', (code) => res(code)));
    child.once('error', (e: NodeJS.ErrnoException) =>
      fail(e.code === 'ENOENT' ? new SqliteCliError(`the sqlite3 command-line shell was not found on PATH: ${e.message}`, out, err) : e),
    );
    void exited.then((code) => fail(new Error(`sqlite3 exited (code ${code}) before its read transaction began: ${err}`)));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (err += chunk));
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      const m = /^(\d+)\n/.exec(out);
      if (!m || settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({
        count: Number(m[1]),
        release: async () => {
          child.stdin.end('COMMIT;\n');
          const code = await exited;
          if (code !== 0) throw new SqliteCliError(`sqlite3 holding a read transaction exited with ${code}: ${err}`, out, err);
        },
      });
    });
    child.stdin.write(`BEGIN;\nSELECT count(*) FROM "${table.replaceAll('"', '""')}";\n`);
  });
}

/**
 * Runs `script` in the CLI on `dbFile`, waits until it ran, then kills the CLI with SIGKILL, so that
 * nothing checkpoints or removes the `-wal` file (at EOF of stdin the CLI would close and checkpoint).
 * Returns that file's bytes: a WAL exactly as SQLite wrote it, for the backup format tests.
 */
export async function walOfKilledCli(dbFile: string, script: string): Promise<Buffer> {
  const child = spawn(CLI, ['-batch', '-bail', dbFile], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (/^done$/m.test(out)) resolve();
    });
    void exited.then(() => reject(new Error(`sqlite3 exited early: ${err}${out}`)));
    child.stdin.write(`${script}\nSELECT 'done';\n`);
  });
  child.kill('SIGKILL');
  await exited;
  return readFileSync(`${dbFile}-wal`);
}
