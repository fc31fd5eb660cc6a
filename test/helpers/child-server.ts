import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * `libsqlctl serve` as a child process (crash tests): runs the compiled `bin/run.js` (dist/ is built
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

export interface ChildServer {
  readonly pid: number;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Settles once the process exited and its stdout/stderr are closed. */
  readonly exited: Promise<ExitInfo>;
  /** Null while the process runs. */
  exitInfo(): ExitInfo | null;
  stdout(): string;
  stderr(): string;
  /** Sends a signal; false when the process is already gone. */
  signal(sig: NodeJS.Signals): boolean;
}

const live = new Set<ChildServer>();

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

/** The environment without SQLD_* variables, which would change the server's flags. */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('SQLD_')) env[key] = value;
  return env;
}

/**
 * Starts `libsqlctl serve --db-path <dbPath> --http-listen-addr 127.0.0.1:0 [args]` and resolves once
 * the banner names the port and `GET /health` answers 200. On failure the child is killed.
 */
export async function startChildServer(dbPath: string, args: readonly string[] = []): Promise<ChildServer> {
  const proc = spawn(process.execPath, [BIN, 'serve', '--db-path', dbPath, '--http-listen-addr', '127.0.0.1:0', ...args], {
    cwd: ROOT,
    env: childEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let exit: ExitInfo | null = null;
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<ExitInfo>((resolve) => {
    proc.on('close', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    });
  });
  const port = new Promise<number>((resolve, reject) => {
    proc.stdout.on('data', (chunk: string) => {
      out += chunk;
      const m = BANNER_RE.exec(out);
      if (m?.[1] !== undefined) resolve(Number(m[1]));
    });
    proc.on('error', reject);
    void exited.then((e) => reject(new Error(`server exited before listening (code ${e.code}, signal ${e.signal})\nstderr:\n${err}`)));
  });
  const pid = proc.pid;
  if (pid === undefined) throw new Error('spawn failed: no pid');
  const child: ChildServer = {
    pid,
    url: '',
    exited,
    exitInfo: () => exit,
    stdout: () => out,
    stderr: () => err,
    signal: (sig) => exit === null && proc.kill(sig),
  };
  live.add(child);
  void exited.then(() => live.delete(child));
  try {
    const url = `http://127.0.0.1:${await within(port, START_TIMEOUT_MS, `server start on ${dbPath}`)}`;
    const health = await fetch(`${url}/health`, { signal: AbortSignal.timeout(START_TIMEOUT_MS) });
    await health.arrayBuffer();
    if (health.status !== 200) throw new Error(`GET /health answered ${health.status}`);
    return { ...child, url };
  } catch (e) {
    await killChild(child);
    throw new Error(`${e instanceof Error ? e.message : String(e)}\nstderr:\n${err}`, { cause: e });
  }
}

/** SIGKILLs one child (if it still runs) and waits for it to be gone. */
export async function killChild(child: ChildServer): Promise<ExitInfo> {
  child.signal('SIGKILL');
  return within(child.exited, 10_000, `exit of server ${child.pid} after SIGKILL`);
}

/** SIGTERM, then waits (bounded) for the process to exit by itself. */
export async function stopChild(child: ChildServer, timeoutMs = 15_000): Promise<ExitInfo> {
  child.signal('SIGTERM');
  return within(child.exited, timeoutMs, `exit of server ${child.pid} after SIGTERM`);
}

/** For afterAll: no server outlives the test file, whatever happened. */
export async function killAllChildServers(): Promise<void> {
  await Promise.allSettled([...live].map((c) => killChild(c)));
}
