import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach } from 'vitest';

/**
 * `libsqlctl` as a child process (crash and CLI tests): runs the compiled `bin/run.js` (dist/ is built
 * by the global setup), on a loopback port chosen by the OS and read back from the welcome banner.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.join(ROOT, 'bin/run.js');
const BANNER_RE = /listening on\s+http:\/\/127\.0\.0\.1:(\d+)/;
const START_TIMEOUT_MS = 15_000;

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** `libsqlctl …` running as a child process. */
export interface CliProcess {
  readonly pid: number;
  /** Settles once the process exited and its stdout/stderr are closed. */
  readonly exited: Promise<ExitInfo>;
  /** Null while the process runs. */
  exitInfo(): ExitInfo | null;
  stdout(): string;
  stderr(): string;
  /** Sends a signal; false when the process is already gone. */
  signal(sig: NodeJS.Signals): boolean;
  /** Resolves with the first match of `re` in stdout; rejects when the process exits first or after `timeoutMs`. */
  waitForStdout(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** The same for stderr (where the server logs). */
  waitForStderr(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
}

export interface ChildServer extends CliProcess {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
}

export interface SpawnCliOptions {
  /** Working directory (default: the repository root). */
  cwd?: string;
  /** Added to the environment (which never holds the caller's SQLD_* variables); undefined removes a variable. */
  env?: Record<string, string | undefined>;
}

const live = new Set<CliProcess>();

/** Rejects with `what` when `promise` does not settle within `ms` (a bound, not a sleep). */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The environment without SQLD_* and LIBSQL_* variables, which would change the server's settings. */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('SQLD_') && !key.startsWith('LIBSQL_')) env[key] = value;
  return env;
}

/** Runs `node bin/run.js <args>`; the process is killed by killAllChildServers if still alive. */
export function spawnCli(args: readonly string[], opts: SpawnCliOptions = {}): CliProcess {
  const env = childEnv();
  for (const [key, value] of Object.entries(opts.env ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  const proc = spawn(process.execPath, [BIN, ...args], { cwd: opts.cwd ?? ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let exit: ExitInfo | null = null;
  const listeners = { stdout: new Set<() => void>(), stderr: new Set<() => void>() };
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (chunk: string) => {
    out += chunk;
    for (const listener of listeners.stdout) listener();
  });
  proc.stderr.on('data', (chunk: string) => {
    err += chunk;
    for (const listener of listeners.stderr) listener();
  });
  const spawnError = new Promise<never>((_resolve, reject) => proc.on('error', reject));
  spawnError.catch(() => undefined);
  const exited = new Promise<ExitInfo>((resolve) => {
    proc.on('close', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    });
  });
  const pid = proc.pid;
  if (pid === undefined) throw new Error(`spawn failed: no pid (${args.join(' ')})`);
  const waitFor = (stream: 'stdout' | 'stderr', re: RegExp, timeoutMs = START_TIMEOUT_MS): Promise<RegExpExecArray> => {
    let listener = (): void => undefined;
    const found = new Promise<RegExpExecArray>((resolve) => {
      listener = () => {
        const m = re.exec(stream === 'stdout' ? out : err);
        if (m) resolve(m);
      };
      listeners[stream].add(listener);
      listener();
    });
    const died = exited.then((e): never => {
      throw new Error(`process exited (code ${e.code}, signal ${e.signal}) before ${stream} matched ${re}\nstdout:\n${out}\nstderr:\n${err}`);
    });
    return within(Promise.race([found, died, spawnError]), timeoutMs, `${stream} to match ${re}; stderr:\n${err}`).finally(() => listeners[stream].delete(listener));
  };
  const child: CliProcess = {
    pid,
    exited,
    exitInfo: () => exit,
    stdout: () => out,
    stderr: () => err,
    signal: (sig) => exit === null && proc.kill(sig),
    waitForStdout: (re, timeoutMs) => waitFor('stdout', re, timeoutMs),
    waitForStderr: (re, timeoutMs) => waitFor('stderr', re, timeoutMs),
  };
  live.add(child);
  void exited.then(() => live.delete(child));
  return child;
}

/** Resolves with `http://<host>:<port>` once the welcome banner names the address. */
export async function bannerUrl(child: CliProcess, timeoutMs = START_TIMEOUT_MS): Promise<string> {
  const m = await child.waitForStdout(BANNER_RE, timeoutMs);
  return `http://127.0.0.1:${m[1]}`;
}

/**
 * Starts `libsqlctl serve --db-path <dbPath> --http-listen-addr 127.0.0.1:0 [args]` and resolves once
 * the banner names the port and `GET /health` answers 200. On failure the child is killed.
 */
export async function startChildServer(dbPath: string, args: readonly string[] = []): Promise<ChildServer> {
  const child = spawnCli(['serve', '--db-path', dbPath, '--http-listen-addr', '127.0.0.1:0', ...args]);
  try {
    const url = await bannerUrl(child);
    const health = await fetch(`${url}/health`, { signal: AbortSignal.timeout(START_TIMEOUT_MS) });
    await health.arrayBuffer();
    if (health.status !== 200) throw new Error(`GET /health answered ${health.status}`);
    return { ...child, url };
  } catch (e) {
    await killChild(child);
    throw new Error(`${e instanceof Error ? e.message : String(e)}\nstderr:\n${child.stderr()}`, { cause: e });
  }
}

/** SIGKILLs one child (if it still runs) and waits for it to be gone. */
export async function killChild(child: CliProcess): Promise<ExitInfo> {
  child.signal('SIGKILL');
  return within(child.exited, 10_000, `exit of server ${child.pid} after SIGKILL`);
}

/** SIGTERM, then waits (bounded) for the process to exit by itself. */
export async function stopChild(child: CliProcess, timeoutMs = 15_000): Promise<ExitInfo> {
  child.signal('SIGTERM');
  return within(child.exited, timeoutMs, `exit of server ${child.pid} after SIGTERM`);
}

/** For afterAll: no server outlives the test file, whatever happened. */
export async function killAllChildServers(): Promise<void> {
  await Promise.allSettled([...live].map((c) => killChild(c)));
}

/** A JavaScript stack frame line (`    at fn (file:line:col)`): errors we understand never print one. */
export const STACK_FRAME_RE = /^\s+at \S/m;

/**
 * The scratch directory of a CLI test file (call at module level): child processes are killed
 * after each test, and at the end the directory is removed.
 */
export function cliScratch(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  afterEach(killAllChildServers);
  afterAll(async () => {
    await killAllChildServers();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}
