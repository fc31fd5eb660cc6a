/**
 * What the bottomless benchmarks run against (bench/bottomless.ts): s3rver in its own process, a
 * counting proxy in front of it, `libsqlctl` (the compiled CLI, bin/run.js) and Litestream (the
 * binary of the `@flydotio/litestream-linux-x64` dev dependency) as child processes. Everything binds
 * 127.0.0.1 on ports the OS picks and is stopped through the runner's cleanups.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openStorage } from '../src/backup/storage/open-storage.js';
import type { BackupStorage } from '../src/backup/storage/storage.js';
import type { BenchOptions } from './types.js';
import { benchTempDir } from './util.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'bin/run.js');
const require = createRequire(import.meta.url);

/** s3rver's fixed credentials. */
const KEY = 'S3RVER';
export const REGION = 'us-east-1';

/** Rejects after `ms` unless `promise` settles first (a bound, not a sleep). */
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

const live = new Set<ChildProcess>();
let exitHook = false;

/**
 * A child that is SIGTERMed (then SIGKILLed after 20 s) on stop and by the runner's cleanups, and
 * SIGKILLed if this process exits without them (a crash).
 */
function supervise(opts: BenchOptions, child: ChildProcess, what: string): { exited: Promise<number | null>; stop(): Promise<number | null> } {
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const c of live) c.kill('SIGKILL');
    });
  }
  live.add(child);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      live.delete(child);
      resolve(code);
    }),
  );
  const stop = async (): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    }
    return exited;
  };
  const unregister = opts.onCleanup(async () => {
    await stop();
  });
  void exited.then(() => unregister());
  child.once('error', (err) => opts.log(`  ${what}: ${err.message}`));
  return { exited, stop };
}

/** Resolves with the first match of `re` in the stream; rejects when the process exits first. */
function waitForOutput(child: ChildProcess, stream: 'stdout' | 'stderr', re: RegExp, what: string): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let text = '';
    child[stream]?.setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk;
      const m = re.exec(text);
      if (m) resolve(m);
    });
    child.once('exit', (code) => reject(new Error(`${what} exited (${code}) before it was ready: ${text.slice(-2000)}`)));
  });
}

// ---- s3rver -------------------------------------------------------------------------------------

/** argv = [s3rver module path, directory]; exits when stdin closes (the benchmark went away). */
const S3RVER_SCRIPT = `
const [modulePath, directory] = process.argv.slice(1);
const S3rver = require(modulePath);
new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory }).run().then(
  (address) => process.stdout.write('S3RVER_PORT=' + address.port + '\\n'),
  (err) => { process.stderr.write(String((err && err.stack) || err) + '\\n'); process.exit(1); },
);
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

export interface S3rver {
  endpoint: string;
  /** Our storage backend on `bucket` of this s3rver (created if missing); closed with the s3rver. */
  bucket(name: string, endpoint?: string): Promise<BackupStorage>;
  close(): Promise<void>;
}

/**
 * s3rver in a `node --openssl-legacy-provider` child: it encrypts ListObjectsV2 continuation tokens
 * with DES, which Node refuses without the flag (test/helpers/s3rver.ts has the same reason).
 */
export async function startS3rver(opts: BenchOptions): Promise<S3rver> {
  const tmp = benchTempDir(opts, 's3rver');
  const child = spawn(process.execPath, ['--openssl-legacy-provider', '-e', S3RVER_SCRIPT, require.resolve('s3rver'), tmp.dir], { stdio: ['pipe', 'pipe', 'inherit'] });
  const proc = supervise(opts, child, 's3rver');
  const m = await within(waitForOutput(child, 'stdout', /S3RVER_PORT=(\d+)/, 's3rver'), 15_000, 's3rver start');
  const endpoint = `http://127.0.0.1:${m[1]}`;
  const open: BackupStorage[] = [];
  return {
    endpoint,
    async bucket(name, via = endpoint) {
      const storage = await openStorage({ kind: 's3', bucket: name, endpoint: via, region: REGION, credentials: { accessKeyId: KEY, secretAccessKey: KEY }, maxAttempts: 3 });
      await storage.ensureBucket();
      open.push(storage);
      return storage;
    },
    async close() {
      await Promise.all(open.map((s) => s.close()));
      await proc.stop();
      tmp.remove();
    },
  };
}

/** The environment of a `libsqlctl` child: none of the caller's settings for it (SQLD_*, LIBSQL_*, AWS_*). */
export function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(SQLD_|LIBSQL_|LIBSQLCTL_|AWS_)/.test(k)) env[k] = v;
  return { ...env, NODE_NO_WARNINGS: '1' }; // the AWS SDK's notice about Node 20 on every start
}

/** … using `bucket` at `endpoint` for its backups. */
export function bottomlessEnv(endpoint: string, bucket: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...cleanEnv(),
    AWS_EC2_METADATA_DISABLED: 'true',
    LIBSQL_BOTTOMLESS_ENDPOINT: endpoint,
    LIBSQL_BOTTOMLESS_BUCKET: bucket,
    LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID: KEY,
    LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY: KEY,
    LIBSQL_BOTTOMLESS_AWS_DEFAULT_REGION: REGION,
    LIBSQL_BOTTOMLESS_DATABASE_ID: 'bench',
    ...extra,
  };
}

// ---- the counting proxy -------------------------------------------------------------------------

/** One request that went through the proxy, with the time its answer came back from s3rver. */
export interface ProxiedRequest {
  method: string;
  /** The object key (path without the bucket, decoded), '' for bucket-level requests. */
  key: string;
  query: string;
  status: number;
  /** Request body bytes (what was uploaded). */
  bytes: number;
  /** performance.now() when the request reached the proxy. */
  sentAt: number;
  /** performance.now() when s3rver's answer (status line and headers) reached the proxy. */
  answeredAt: number;
}

export interface CountingProxy {
  readonly endpoint: string;
  readonly requests: readonly ProxiedRequest[];
  close(): Promise<void>;
}

/** A plain HTTP proxy to `target` that records every request (in this process: one clock). */
export async function startCountingProxy(opts: BenchOptions, target: string, bucket: string): Promise<CountingProxy> {
  const upstream = new URL(target);
  const requests: ProxiedRequest[] = [];
  const server = http.createServer((req, res) => {
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    const url = new URL(req.url ?? '/', 'http://proxy');
    const parts = url.pathname.split('/').slice(1);
    const key = parts[0] === bucket ? decodeURIComponent(parts.slice(1).join('/')) : '';
    const sentAt = performance.now();
    let bytes = 0;
    req.on('data', (chunk: Buffer) => (bytes += chunk.length));
    const headers = { ...req.headers };
    delete headers.expect; // answered here already; SigV4 does not sign it
    const up = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers }, (upRes) => {
      requests.push({ method: req.method ?? '', key, query: url.search, status: upRes.statusCode ?? 0, bytes, sentAt, answeredAt: performance.now() });
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      upRes.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const close = async (): Promise<void> => {
    if (!server.listening) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  };
  const unregister = opts.onCleanup(close);
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: async () => {
      unregister();
      await close();
    },
  };
}

/** Whether a proxied request stored data: a PUT (object or multipart part) or a multipart completion. */
export function isUpload(r: ProxiedRequest): boolean {
  return r.method === 'PUT' || (r.method === 'POST' && r.query.includes('uploadId'));
}

// ---- libsqlctl ----------------------------------------------------------------------------------

let built = false;

/**
 * The CLI under test is the compiled one (bin/run.js → dist/), as a user runs it: compile src/ once
 * per benchmark process, as the test suite's global setup does (BENCH_NO_BUILD=1 skips it).
 */
export function ensureBuilt(opts: BenchOptions): void {
  if (built || process.env.BENCH_NO_BUILD === '1') return;
  const t0 = performance.now();
  execFileSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'inherit' });
  built = true;
  opts.log(`  compiled dist/ in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

export interface CliResult {
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a program to completion; rejects on another exit code than `exitCode` (with its output) or after `timeoutMs`. */
export async function run(opts: BenchOptions, file: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 300_000, exitCode = 0): Promise<CliResult> {
  const t0 = performance.now();
  const child = spawn(file, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const proc = supervise(opts, child, path.basename(file));
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  let code: number | null;
  try {
    code = await within(closed, timeoutMs, `${path.basename(file)} ${args.join(' ')}`);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  const ms = performance.now() - t0;
  if (code !== exitCode) throw new Error(`${path.basename(file)} ${args.join(' ')} exited with ${code}: ${(stderr || stdout).trim().slice(-2000)}`);
  return { stdout, stderr, ms };
}

/** `libsqlctl <args>` (node bin/run.js). */
export function cli(opts: BenchOptions, args: string[], env: NodeJS.ProcessEnv, timeoutMs?: number, exitCode = 0): Promise<CliResult> {
  return run(opts, process.execPath, [BIN, ...args], env, timeoutMs, exitCode);
}

export interface Serve {
  url: string;
  /** SIGTERM (a graceful stop: uploads finish) and wait; rejects unless it exits with 0. */
  stop(): Promise<void>;
}

/** `libsqlctl serve` on a loopback port chosen by the OS (read back from the banner). */
export async function serve(opts: BenchOptions, dbPath: string, env: NodeJS.ProcessEnv, flags: string[] = []): Promise<Serve> {
  const args = [BIN, 'serve', '--db-path', dbPath, '--http-listen-addr', '127.0.0.1:0', ...flags];
  const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'inherit'] });
  const proc = supervise(opts, child, 'serve');
  const m = await within(waitForOutput(child, 'stdout', /listening on\s+(http:\/\/127\.0\.0\.1:\d+)/, 'serve'), 120_000, 'serve start');
  return {
    url: m[1]!,
    async stop() {
      const code = await proc.stop();
      if (code !== 0) throw new Error(`serve exited with ${code}`);
    },
  };
}

// ---- Litestream ---------------------------------------------------------------------------------

/** The binary shipped inside the npm package (nothing is downloaded), or null with the reason. */
export function litestreamBinary(): { path: string; version: string } | { path: null; reason: string } {
  let dir: string;
  try {
    dir = path.dirname(require.resolve('@flydotio/litestream-linux-x64/package.json'));
  } catch {
    return { path: null, reason: 'the dev dependency @flydotio/litestream-linux-x64 is not installed (npm install; linux x64 only)' };
  }
  const bin = path.join(dir, 'litestream');
  try {
    const version = execFileSync(bin, ['version'], { encoding: 'utf8', timeout: 10_000 }).trim();
    return { path: bin, version };
  } catch (err) {
    return { path: null, reason: `${bin} does not run here: ${(err as Error).message}` };
  }
}

/** A Litestream config: one database, one S3 replica on s3rver (path-style, s3rver's keys), Litestream's default intervals. */
export function writeLitestreamConfig(file: string, dbPath: string, endpoint: string, bucket: string, replicaPath: string): void {
  const yaml = [
    'dbs:',
    `  - path: ${JSON.stringify(dbPath)}`,
    '    replicas:',
    '      - type: s3',
    `        bucket: ${bucket}`,
    `        path: ${replicaPath}`,
    `        endpoint: ${endpoint}`,
    `        region: ${REGION}`,
    `        access-key-id: ${KEY}`,
    `        secret-access-key: ${KEY}`,
    '        force-path-style: true',
    '        skip-verify: true',
    '',
  ].join('\n');
  fs.writeFileSync(file, yaml);
}

/** Litestream's environment: nothing from ours that it would read (AWS_*, LITESTREAM_*). */
export function litestreamEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(AWS_|LITESTREAM_)/.test(k)) env[k] = v;
  return env;
}

/** `litestream replicate -config <file>` running until stop(). */
export function litestreamReplicate(opts: BenchOptions, bin: string, config: string): { stop(): Promise<void> } {
  const child = spawn(bin, ['replicate', '-config', config], { env: litestreamEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (log = (log + c).slice(-4000)));
  const proc = supervise(opts, child, 'litestream replicate');
  return {
    async stop() {
      const code = await proc.stop();
      if (code !== 0) throw new Error(`litestream replicate exited with ${code}: ${log}`);
    },
  };
}
