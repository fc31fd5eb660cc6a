import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { SignJWT } from 'jose';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { bannerUrl, killAllChildServers, spawnCli, STACK_FRAME_RE, within, type CliProcess, type ExitInfo, type SpawnCliOptions } from '../helpers/child-server.js';
import { closedLoopbackPort } from '../helpers/free-port.js';

/**
 * `libsqlctl serve` as users run it: the real CLI (`node bin/run.js serve …`) as a child process in a
 * temporary working directory, driven by flags, environment variables and signals, on loopback only.
 */

/** Bound of one step (start, one request, an exit that should be prompt). */
const STEP_MS = 10_000;
const UNCLEAN_RE = /did not shut down cleanly/;
const CLEAN_EXIT: ExitInfo = { code: 0, signal: null };
const BASIC_CREDENTIAL = 'dXNlcjpwYXNzd29yZA=='; // user:password

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'libsqlctl-cli-'));
const tempCwd = (name: string): string => fs.mkdtempSync(path.join(scratch, `${name}-`));

afterEach(async () => {
  await killAllChildServers();
});

afterAll(async () => {
  await killAllChildServers();
  fs.rmSync(scratch, { recursive: true, force: true });
});

const serve = (args: readonly string[], opts: SpawnCliOptions): CliProcess => spawnCli(['serve', ...args], opts);

/** Sends `sig` and waits (bounded) for the exit. */
async function stop(child: CliProcess, sig: NodeJS.Signals, timeoutMs = STEP_MS): Promise<ExitInfo> {
  expect(child.signal(sig), `process alive when ${sig} was sent; stderr:\n${child.stderr()}`).toBe(true);
  return within(child.exited, timeoutMs, `exit after ${sig}; stderr:\n${child.stderr()}`);
}

interface Answer {
  status: number;
  raw: string;
  body: unknown;
}

function parseAnswer(status: number, raw: string): Answer {
  let body: unknown = null;
  try {
    body = JSON.parse(raw) as unknown;
  } catch {
    // not JSON: assertions report `raw`
  }
  return { status, raw, body };
}

async function request(url: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(STEP_MS) });
  return parseAnswer(res.status, await res.text());
}

const execute = (sql: string): Json => ({ type: 'execute', stmt: { sql } });
const CLOSE: Json = { type: 'close' };
const pipelineBody = (baton: string | null, requests: Json[]): string => JSON.stringify({ baton, requests });

function pipeline(url: string, baton: string | null, requests: Json[], headers: Record<string, string> = {}): Promise<Answer> {
  return request(`${url}/v2/pipeline`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: pipelineBody(baton, requests) });
}

/** The responses of a 200 pipeline answer whose results are all `ok`; fails the test otherwise. */
function okResponses(answer: Answer): Json[] {
  expect(answer.status, `pipeline answer: ${answer.raw.slice(0, 400)}`).toBe(200);
  const results = isObj(answer.body) && Array.isArray(answer.body.results) ? answer.body.results : [];
  const responses = results.map((r: unknown) => (isObj(r) && r.type === 'ok' && isObj(r.response) ? r.response : null));
  expect(responses.length > 0 && responses.every((r) => r !== null), `all results ok: ${answer.raw.slice(0, 400)}`).toBe(true);
  return responses.filter(isObj);
}

const batonOf = (answer: Answer): unknown => (isObj(answer.body) ? answer.body.baton : undefined);

/** Runs statements in one closed stream; they must all succeed. */
async function execOk(url: string, sqls: string[]): Promise<void> {
  okResponses(await pipeline(url, null, [...sqls.map(execute), CLOSE]));
}

/** `GET /health` until it answers 200 (only for `--no-welcome`, where no output says the server is up). */
async function waitForHealth(url: string, child: CliProcess): Promise<void> {
  const deadline = performance.now() + STEP_MS;
  for (;;) {
    if (child.exitInfo() !== null) throw new Error(`server exited before answering /health; stderr:\n${child.stderr()}`);
    const status = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) }).then(
      async (res) => (await res.arrayBuffer(), res.status),
      () => 0,
    );
    if (status === 200) return;
    if (performance.now() > deadline) throw new Error(`no 200 from ${url}/health within ${STEP_MS} ms; stderr:\n${child.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Resolves at `deadline` (performance.now() time): for tests whose subject is elapsed time. */
const until = (deadline: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, deadline - performance.now())));

/**
 * A kept-alive connection with no request in flight (one `GET /health` done). The server closes such
 * connections the moment its shutdown begins, so `closed` is the event "the signal was handled".
 */
async function idleConnection(port: number): Promise<{ closed: Promise<void>; destroy(): void }> {
  const socket = net.connect(port, '127.0.0.1');
  socket.setEncoding('latin1');
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await within(
    new Promise<void>((resolve, reject) => {
      let head = '';
      socket.once('error', reject);
      socket.once('connect', () => socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n'));
      socket.on('data', (chunk: string) => {
        head += chunk;
        if (head.includes('\r\n\r\n')) resolve();
      });
    }),
    STEP_MS,
    'GET /health on the idle connection',
  );
  expect(socket.destroyed, 'the idle connection is open').toBe(false);
  return { closed, destroy: () => socket.destroy() };
}

/**
 * A `POST /v2/pipeline` the server has accepted but not finished: sent with `Expect: 100-continue`,
 * it resolves once the server answered `100 Continue` (the request is routed and in flight) and
 * holds the body back until send().
 */
async function heldPipeline(port: number, agent: http.Agent, body: string): Promise<{ send(): Promise<Answer>; cancel(): void }> {
  const req = http.request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: '/v2/pipeline',
    agent,
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), expect: '100-continue' },
  });
  const answer = new Promise<Answer>((resolve, reject) => {
    req.once('error', reject);
    req.once('response', (res) => {
      let raw = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (raw += chunk));
      res.once('error', reject);
      res.once('end', () => resolve(parseAnswer(res.statusCode ?? 0, raw)));
    });
  });
  answer.catch(() => undefined);
  await within(Promise.race([new Promise<void>((resolve) => req.once('continue', () => resolve())), answer.then(() => undefined)]), STEP_MS, '100 Continue');
  return {
    send: () => {
      req.end(body);
      return within(answer, STEP_MS, 'answer of the held request');
    },
    cancel: () => req.destroy(),
  };
}

/** 'connected' or the error code of a new TCP connection to the port. */
function connectOutcome(port: number): Promise<string> {
  return within(
    new Promise<string>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve('connected');
      });
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    }),
    STEP_MS,
    `connect to ${port}`,
  );
}

function rows(file: string, sql: string): unknown[] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).raw().all();
  } finally {
    db.close();
  }
}

describe('serve as a child process', () => {
  it('defaults: banner, /health, ./data.sqld/dbs/default/data; SIGINT exits 0 and removes .sentinel', async () => {
    const cwd = tempCwd('defaults');
    const port = await closedLoopbackPort();
    const child = serve(['--http-listen-addr', `127.0.0.1:${port}`], { cwd });
    const url = await bannerUrl(child);
    expect(url).toBe(`http://127.0.0.1:${port}`);
    expect(child.stdout()).toMatch(/^\s*data in\s+data\.sqld\/dbs\/default\/data\s*$/m);
    expect(child.stdout()).toMatch(/^\s*auth\s+disabled/m);
    expect((await request(`${url}/health`)).status).toBe(200);

    const nsDir = path.join(cwd, 'data.sqld', 'dbs', 'default');
    expect(fs.existsSync(path.join(nsDir, 'data')), 'database file under the working directory').toBe(true);
    expect(fs.existsSync(path.join(nsDir, '.sentinel')), '.sentinel while running').toBe(true);
    await execOk(url, ['CREATE TABLE t(x TEXT)', "INSERT INTO t VALUES ('hello')"]);

    expect(await stop(child, 'SIGINT')).toEqual(CLEAN_EXIT);
    expect(fs.existsSync(path.join(nsDir, '.sentinel')), '.sentinel after a clean stop').toBe(false);
    expect(rows(path.join(nsDir, 'data'), 'SELECT x FROM t')).toEqual([['hello']]);
  });

  it('environment variables instead of flags: SQLD_DB_PATH, SQLD_HTTP_LISTEN_ADDR, SQLD_HTTP_AUTH, SQLD_AUTH_JWT_KEY', async () => {
    const cwd = tempCwd('env');
    const query = [execute('SELECT 1'), CLOSE];

    const basicPort = await closedLoopbackPort();
    const basic = serve([], { cwd, env: { SQLD_DB_PATH: 'env-db', SQLD_HTTP_LISTEN_ADDR: `127.0.0.1:${basicPort}`, SQLD_HTTP_AUTH: `basic:${BASIC_CREDENTIAL}` } });
    const basicUrl = await bannerUrl(basic);
    expect(basicUrl).toBe(`http://127.0.0.1:${basicPort}`);
    expect(basic.stdout()).toMatch(/^\s*data in\s+env-db\/dbs\/default\/data\s*$/m);
    expect(basic.stdout()).toMatch(/^\s*auth\s+HTTP basic/m);
    expect(fs.existsSync(path.join(cwd, 'env-db', 'dbs', 'default', 'data')), 'database under SQLD_DB_PATH').toBe(true);
    expect(fs.existsSync(path.join(cwd, 'data.sqld')), 'no default data directory').toBe(false);
    expect((await pipeline(basicUrl, null, query)).status, 'no credentials').toBe(401);
    expect((await pipeline(basicUrl, null, query, { authorization: 'Basic dXNlcjpvdGhlcg==' })).status, 'wrong password').toBe(401);
    okResponses(await pipeline(basicUrl, null, query, { authorization: `Basic ${BASIC_CREDENTIAL}` }));
    expect(await stop(basic, 'SIGTERM')).toEqual(CLEAN_EXIT);

    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const rawKey = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('base64url');
    const jwtPort = await closedLoopbackPort();
    const jwt = serve([], { cwd, env: { SQLD_DB_PATH: 'env-db', SQLD_HTTP_LISTEN_ADDR: `127.0.0.1:${jwtPort}`, SQLD_AUTH_JWT_KEY: rawKey } });
    const jwtUrl = await bannerUrl(jwt);
    expect(jwtUrl).toBe(`http://127.0.0.1:${jwtPort}`);
    expect(jwt.stdout()).toMatch(/^\s*auth\s+JWT/m);
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' }).sign(privateKey);
    const foreign = await new SignJWT({}).setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' }).sign(generateKeyPairSync('ed25519').privateKey);
    expect((await pipeline(jwtUrl, null, query)).status, 'no token').toBe(401);
    expect((await pipeline(jwtUrl, null, query, { authorization: `Bearer ${foreign}` })).status, 'token signed by another key').toBe(401);
    okResponses(await pipeline(jwtUrl, null, query, { authorization: `Bearer ${token}` }));
    expect(await stop(jwt, 'SIGTERM')).toEqual(CLEAN_EXIT);
  });

  it('--no-welcome prints no banner', async () => {
    const cwd = tempCwd('no-welcome');
    const port = await closedLoopbackPort();
    const child = serve(['--no-welcome', '--http-listen-addr', `127.0.0.1:${port}`], { cwd });
    await waitForHealth(`http://127.0.0.1:${port}`, child);
    expect(await stop(child, 'SIGINT')).toEqual(CLEAN_EXIT);
    expect(child.stdout()).toBe('');
  });

  it('bad configuration: non-zero exit, an error naming the problem, no stack trace, nothing created', async () => {
    const cwd = tempCwd('bad-config');
    fs.writeFileSync(path.join(cwd, 'private.pem'), generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }));
    fs.writeFileSync(path.join(cwd, 'broken.pem'), '-----BEGIN PUBLIC KEY-----\nnot base64 at all!\n-----END PUBLIC KEY-----\n');
    const cases: { args: string[]; error: RegExp }[] = [
      { args: ['--http-listen-addr', 'nonsense'], error: /--http-listen-addr\b.*nonsense/ },
      { args: ['--max-response-size', '10QB'], error: /--max-response-size\b.*10QB/ },
      { args: ['--auth-jwt-key-file', '/nonexistent'], error: /--auth-jwt-key-file\b.*\/nonexistent/ },
      { args: ['--auth-jwt-key-file', 'private.pem'], error: /private key/i },
      { args: ['--auth-jwt-key-file', 'broken.pem'], error: /key|PEM/i },
    ];
    // DEBUG would make oclif print stack traces on purpose.
    const runs = cases.map((c) => {
      // A configuration that were accepted by mistake must not bind the default port 8080.
      const listen = c.args.includes('--http-listen-addr') ? [] : ['--http-listen-addr', '127.0.0.1:0'];
      return { ...c, child: serve([...listen, ...c.args], { cwd, env: { DEBUG: undefined } }) };
    });
    for (const { args, error, child } of runs) {
      const exit = await within(child.exited, STEP_MS, `exit of serve ${args.join(' ')}`);
      const what = `serve ${args.join(' ')}\nstderr:\n${child.stderr()}`;
      expect.soft(exit.code, `exit code of ${what}`).not.toBe(0);
      expect.soft(exit.signal, `killed by a signal: ${what}`).toBeNull();
      expect.soft(child.stderr(), what).toMatch(error);
      expect.soft(child.stderr(), `stack trace in ${what}`).not.toMatch(STACK_FRAME_RE);
      expect.soft(child.stdout(), `stdout of ${what}`).not.toMatch(/listening on/);
    }
    expect(fs.existsSync(path.join(cwd, 'data.sqld')), 'a data directory created despite the bad configuration').toBe(false);
  });

  it('SIGTERM with requests in flight: they get their answers, new connections are refused, exit 0, clean restart keeps the writes', async () => {
    const SHUTDOWN_S = 4;
    const cwd = tempCwd('graceful');
    const args = ['--http-listen-addr', '127.0.0.1:0', '--shutdown-timeout', String(SHUTDOWN_S)];
    const child = serve(args, { cwd });
    const url = await bannerUrl(child);
    const port = Number(new URL(url).port);
    await execOk(url, ['CREATE TABLE t(id TEXT)', "INSERT INTO t VALUES ('before')"]);

    // Keep-alive, as real clients (fetch, @libsql/client) do.
    const agent = new http.Agent({ keepAlive: true });
    const idle = await idleConnection(port);
    const first = await heldPipeline(port, agent, pipelineBody(null, [execute("INSERT INTO t VALUES ('in-flight-1')"), CLOSE]));
    const second = await heldPipeline(port, agent, pipelineBody(null, [execute("INSERT INTO t VALUES ('in-flight-2')"), execute('SELECT count(*) FROM t'), CLOSE]));
    try {
      const signalledAt = performance.now();
      expect(child.signal('SIGTERM')).toBe(true);
      await within(idle.closed, STEP_MS, 'the server to close its idle connection (shutdown begun)');
      expect(child.exitInfo(), 'exited with requests in flight').toBeNull();

      expect(okResponses(await first.send())[0]?.type).toBe('execute');
      // The second request is still in flight, so the process is certainly alive here.
      expect(await connectOutcome(port), 'a new connection during shutdown').toBe('ECONNREFUSED');
      const counted = okResponses(await second.send())[1];
      expect(isObj(counted) && isObj(counted.result) ? counted.result.rows : null).toEqual([[{ type: 'integer', value: '3' }]]);
      const answeredAt = performance.now();

      const exit = await within(child.exited, (SHUTDOWN_S + 5) * 1000, `exit after SIGTERM; stderr:\n${child.stderr()}`);
      const exitedAt = performance.now();
      expect(exit).toEqual(CLEAN_EXIT);
      expect(exitedAt - signalledAt, 'SIGTERM → exit (ms), bounded by --shutdown-timeout').toBeLessThan(SHUTDOWN_S * 1000 + 1000);
      // Nothing is left to wait for once the last in-flight request is answered.
      expect.soft(exitedAt - answeredAt, 'last in-flight answer → exit (ms), keep-alive client').toBeLessThan(1500);
    } finally {
      first.cancel();
      second.cancel();
      idle.destroy();
      agent.destroy();
    }
    expect(fs.existsSync(path.join(cwd, 'data.sqld', 'dbs', 'default', '.sentinel')), '.sentinel after SIGTERM').toBe(false);

    const restarted = serve(args, { cwd });
    const restartedUrl = await bannerUrl(restarted);
    const ids = okResponses(await pipeline(restartedUrl, null, [execute('SELECT id FROM t ORDER BY id'), CLOSE]))[0];
    expect(isObj(ids) && isObj(ids.result) ? ids.result.rows : null).toEqual(['before', 'in-flight-1', 'in-flight-2'].map((v) => [{ type: 'text', value: v }]));
    expect(await stop(restarted, 'SIGTERM')).toEqual(CLEAN_EXIT);
    expect(restarted.stderr(), 'restart after SIGTERM').not.toMatch(UNCLEAN_RE);
  });

  it('--idle-shutdown-timeout-s 1: requests postpone it, then the server exits 0 by itself', async () => {
    const cwd = tempCwd('idle');
    const child = serve(['--http-listen-addr', '127.0.0.1:0', '--idle-shutdown-timeout-s', '1'], { cwd });
    const url = await bannerUrl(child);
    // The idle timer started before the banner was printed: times below are upper bounds of its age.
    const start = performance.now();
    await until(start + 500);
    expect(child.exitInfo(), 'alive at 0.5 s').toBeNull();
    await execOk(url, ['SELECT 1']);
    await until(start + 1200);
    expect(child.exitInfo(), 'alive at 1.2 s: the request at 0.5 s postponed the idle shutdown').toBeNull();
    const lastRequestAt = performance.now();
    expect((await request(`${url}/health`)).status, 'GET /health at 1.2 s').toBe(200);

    const exit = await within(child.exited, STEP_MS, `idle shutdown; stderr:\n${child.stderr()}`);
    const idleMs = performance.now() - lastRequestAt;
    expect(exit).toEqual(CLEAN_EXIT);
    expect(idleMs, 'last request → exit (ms)').toBeGreaterThanOrEqual(950);
    expect(idleMs, 'last request → exit (ms)').toBeLessThan(3000);
    expect(fs.existsSync(path.join(cwd, 'data.sqld', 'dbs', 'default', '.sentinel')), '.sentinel after idle shutdown').toBe(false);
  });

  it('a second SIGINT during a shutdown that waits for a request exits at once', async () => {
    const cwd = tempCwd('second-sigint');
    const child = serve(['--http-listen-addr', '127.0.0.1:0', '--shutdown-timeout', '30'], { cwd });
    const port = Number(new URL(await bannerUrl(child)).port);
    const agent = new http.Agent({ keepAlive: false });
    const idle = await idleConnection(port);
    const held = await heldPipeline(port, agent, pipelineBody(null, [execute('SELECT 1'), CLOSE]));
    try {
      expect(child.signal('SIGINT')).toBe(true);
      await within(idle.closed, STEP_MS, 'the server to close its idle connection (shutdown begun)');
      expect(child.exitInfo(), 'shutdown waits for the held request').toBeNull();
      const secondAt = performance.now();
      const exit = await stop(child, 'SIGINT', 5000);
      expect(performance.now() - secondAt, 'second SIGINT → exit (ms)').toBeLessThan(2000);
      expect(exit.signal).toBeNull();
      expect(exit.code, 'exit code after a forced stop').not.toBe(0);
    } finally {
      held.cancel();
      idle.destroy();
      agent.destroy();
    }
  });

  it('--max-concurrent-connections 1: a second stream gets 429 after --connection-creation-timeout-sec, the first still works', async () => {
    const cwd = tempCwd('connections');
    const child = serve(['--http-listen-addr', '127.0.0.1:0', '--max-concurrent-connections', '1', '--connection-creation-timeout-sec', '1'], { cwd });
    const url = await bannerUrl(child);

    const held = await pipeline(url, null, [execute('SELECT 1')]);
    okResponses(held);
    const baton = batonOf(held);
    if (typeof baton !== 'string') throw new Error(`no baton for the open stream: ${held.raw}`);

    const askedAt = performance.now();
    const refused = await pipeline(url, null, [execute('SELECT 2'), CLOSE]);
    const waited = performance.now() - askedAt;
    expect(refused.status, refused.raw).toBe(429);
    expect(refused.body).toEqual({ error: 'Timed out while opening database connection' });
    expect(waited, 'wait before the 429 (ms)').toBeGreaterThanOrEqual(900);
    expect(waited, 'wait before the 429 (ms)').toBeLessThan(3000);

    const resumed = await pipeline(url, baton, [execute('SELECT 3'), CLOSE]);
    expect(okResponses(resumed).map((r) => r.type)).toEqual(['execute', 'close']);
    expect(batonOf(resumed), 'baton after close').toBeNull();
    okResponses(await pipeline(url, null, [execute('SELECT 4'), CLOSE]));
    expect(await stop(child, 'SIGTERM')).toEqual(CLEAN_EXIT);
  });
});
