/**
 * A server in a child process for `idle-rss` and `startup`: `libsqlctl serve` as a user runs it
 * (node bin/run.js → dist/, default configuration) or the bare fastify baseline
 * (bench/bare-fastify.js). Both listen on 127.0.0.1 only, get the same environment, and are stopped
 * through the runner's cleanups (SIGKILLed if this process exits without them).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { cleanEnv, ROOT } from './bottomless-harness.js';
import type { BenchOptions } from './types.js';

export type ServerKind = 'server' | 'baseline';

const BIN = path.join(ROOT, 'bin/run.js');
const BARE = path.join(ROOT, 'bench/bare-fastify.js');
/** Where each kind says which port it got: serve's `listening` log line (stderr, JSON), the baseline's `PORT=`. */
const PORT_LINE: Record<ServerKind, { stream: 'stdout' | 'stderr'; re: RegExp }> = {
  server: { stream: 'stderr', re: /"http":"http:\/\/127\.0\.0\.1:(\d+)"/ },
  baseline: { stream: 'stdout', re: /PORT=(\d+)/ },
};

const live = new Set<ChildProcess>();
let exitHook = false;

export interface ServerProcess {
  readonly pid: number;
  /** The port, once the process said which (immediately when one was given). */
  port(): Promise<number>;
  /** Rejects when the process exits before stop(). */
  readonly died: Promise<never>;
  /** SIGTERM, SIGKILL after 10 s; resolves once it exited. */
  stop(): Promise<void>;
}

/** A port that was free a moment ago (for a start-up measured from the spawn, before the server can say which). */
export async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** `libsqlctl serve --db-path <dataDir> --http-listen-addr 127.0.0.1:<port> --no-welcome`, or the baseline on `port`. */
export function spawnServer(opts: BenchOptions, kind: ServerKind, port: number, dataDir: string): ServerProcess {
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  const args =
    kind === 'server' ? [BIN, 'serve', '--db-path', path.join(dataDir, 'data.sqld'), '--http-listen-addr', `127.0.0.1:${port}`, '--no-welcome'] : [BARE, String(port)];
  const child = spawn(process.execPath, args, { cwd: ROOT, env: cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error(`${kind}: spawn failed`);
  live.add(child);
  let output = '';
  let stopping = false;
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      live.delete(child);
      resolve(code);
    }),
  );
  const died = exited.then((code) => {
    throw new Error(`${kind} exited (${code}) ${stopping ? 'while stopping' : 'unexpectedly'}: ${output.slice(-2000)}`);
  });
  died.catch(() => undefined);
  const { stream, re } = PORT_LINE[kind];
  let resolvePort!: (port: number) => void;
  const portSeen = port !== 0 ? Promise.resolve(port) : new Promise<number>((resolve) => (resolvePort = resolve));
  let streamText = '';
  let waiting = port === 0;
  for (const name of ['stdout', 'stderr'] as const) {
    child[name].setEncoding('utf8').on('data', (c: string) => {
      output = (output + c).slice(-20_000);
      if (waiting && name === stream) {
        streamText += c;
        const m = re.exec(streamText);
        if (m) {
          waiting = false;
          resolvePort(Number(m[1]));
        }
      }
    });
  }
  const stop = async (): Promise<void> => {
    stopping = true;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
  };
  const unregister = opts.onCleanup(stop);
  void exited.then(() => unregister());
  return { pid: child.pid, port: () => Promise.race([portSeen, died]), died, stop };
}

/** The status of `GET /health` (a fresh connection, closed after), or null when nothing answered. */
export function healthStatus(port: number, timeoutMs = 1000): Promise<number | null> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/health', agent: false, timeout: timeoutMs, headers: { connection: 'close' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? null));
      res.on('error', () => resolve(null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

export interface Healthy {
  /** performance.now() of the first answer of any status (the port is open). */
  firstAnswerAt: number;
  /** performance.now() of the first 200. */
  healthyAt: number;
}

/** Polls `/health` every `intervalMs` until it answers 200; rejects after `timeoutMs` or when the process dies. */
export async function waitHealthy(proc: ServerProcess, port: number, intervalMs: number, timeoutMs: number): Promise<Healthy> {
  const limit = performance.now() + timeoutMs;
  let firstAnswerAt: number | null = null;
  const seen: { dead: Error | null } = { dead: null };
  proc.died.catch((err: unknown) => (seen.dead = err instanceof Error ? err : new Error(String(err))));
  for (;;) {
    const status = await healthStatus(port);
    const now = performance.now();
    if (status !== null) firstAnswerAt ??= now;
    if (status === 200) return { firstAnswerAt: firstAnswerAt ?? now, healthyAt: now };
    if (seen.dead !== null) throw seen.dead;
    if (now > limit) throw new Error(`/health on port ${port} did not answer 200 within ${timeoutMs} ms (last: ${status ?? 'no answer'})`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** VmRSS and VmHWM (peak) of a process in KiB, from /proc/<pid>/status (Linux). */
export function memoryKiB(pid: number): { rss: number; hwm: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!m) throw new Error(`/proc/${pid}/status has no ${name}`);
    return Number(m[1]);
  };
  return { rss: field('VmRSS'), hwm: field('VmHWM') };
}
