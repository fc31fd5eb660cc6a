import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, it } from 'vitest';
import { bannerUrl, killAllChildServers, spawnCli, within, type CliProcess, type ExitInfo } from '../helpers/child-server.js';

/**
 * `libsqlctl serve`'s logs as a sqld user meets them: the real CLI as a child process, its stderr
 * (JSON lines, as stderr is a pipe) parsed line by line. The children are independent and run
 * concurrently; each is reused for several checks.
 */

const STEP_MS = 10_000;
const CLEAN_EXIT: ExitInfo = { code: 0, signal: null };
const LEVEL = { trace: 10, debug: 20, info: 30, warn: 40, error: 50 } as const;
const BASIC_CREDENTIAL = 'dXNlcjpwYXNzd29yZA=='; // user:password
/** Neither RUST_LOG nor our variable leaks in from the environment the tests run in. */
const NO_LOG_ENV = { RUST_LOG: undefined, LIBSQLCTL_LOG_LEVEL: undefined };

interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'libsqlctl-logging-'));
const tempCwd = (name: string): string => fs.mkdtempSync(path.join(scratch, `${name}-`));

afterAll(async () => {
  await killAllChildServers();
  fs.rmSync(scratch, { recursive: true, force: true });
});

/** Every stderr line, parsed; a line that is not a JSON object fails the test. */
function logLines(child: CliProcess): LogLine[] {
  return child
    .stderr()
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const parsed = JSON.parse(l) as unknown;
      if (parsed === null || typeof parsed !== 'object' || typeof (parsed as LogLine).level !== 'number' || typeof (parsed as LogLine).msg !== 'string') {
        throw new Error(`not a pino JSON line: ${l}`);
      }
      return parsed as LogLine;
    });
}

const serve = (cwd: string, args: readonly string[], env: Record<string, string | undefined> = {}): CliProcess =>
  spawnCli(['serve', '--http-listen-addr', '127.0.0.1:0', ...args], { cwd, env: { ...NO_LOG_ENV, ...env } });

async function sigterm(child: CliProcess): Promise<ExitInfo> {
  if (!child.signal('SIGTERM')) throw new Error(`process gone before SIGTERM; stderr:\n${child.stderr()}`);
  return within(child.exited, STEP_MS, `exit after SIGTERM; stderr:\n${child.stderr()}`);
}

async function pipeline(url: string, headers: Record<string, string> = {}): Promise<number> {
  const res = await fetch(`${url}/v2/pipeline?secret=in-the-query`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ baton: null, requests: [{ type: 'execute', stmt: { sql: "SELECT 'body-marker'" } }, { type: 'close' }] }),
    signal: AbortSignal.timeout(STEP_MS),
  });
  await res.arrayBuffer();
  return res.status;
}

describe.concurrent('serve logging', () => {
  it('default level info: a "listening" line with the address, no debug lines; SIGTERM logs "shutting down" then "stopped"', async ({ expect }) => {
    const child = serve(tempCwd('default'), []);
    const url = await bannerUrl(child);
    expect(await pipeline(url)).toBe(200);
    expect(await sigterm(child)).toEqual(CLEAN_EXIT);

    const lines = logLines(child);
    expect(lines.filter((l) => l.level < LEVEL.info), 'lines below info').toEqual([]);
    const listening = lines.filter((l) => l.msg === 'listening');
    expect(listening).toHaveLength(1);
    expect(listening[0]).toMatchObject({ level: LEVEL.info, http: url });
    const msgs = lines.map((l) => l.msg);
    const shuttingDown = msgs.indexOf('shutting down');
    expect(shuttingDown, `"shutting down" in ${JSON.stringify(msgs)}`).toBeGreaterThan(msgs.indexOf('listening'));
    expect(lines[shuttingDown]).toMatchObject({ level: LEVEL.info, signal: 'SIGTERM' });
    expect(msgs.at(-1), 'the last line').toBe('stopped');
    expect(lines.at(-1)?.level).toBe(LEVEL.info);
  });

  it('RUST_LOG=libsql_server=debug,h2=warn: a debug line per request (method, path, status, duration, namespace), no body, query or credentials; basic auth + JWT key: basic wins, banner and log say so', async ({ expect }) => {
    const jwtKey = generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }).x ?? '';
    const child = serve(tempCwd('debug'), ['--http-auth', `basic:${BASIC_CREDENTIAL}`], { RUST_LOG: 'libsql_server=debug,h2=warn', SQLD_AUTH_JWT_KEY: jwtKey });
    const url = await bannerUrl(child);
    expect(child.stdout()).toMatch(/^ {2}auth {11}HTTP basic\n {17}\(a JWT key is also configured; as in sqld, basic auth is used\)$/m);
    expect(await pipeline(url, { authorization: `Basic ${BASIC_CREDENTIAL}` }), 'basic auth is used').toBe(200);
    expect(await pipeline(url), 'no credentials').toBe(401);
    expect(await sigterm(child)).toEqual(CLEAN_EXIT);

    const lines = logLines(child);
    const requests = lines.filter((l) => l.msg === 'request');
    expect(requests.map((l) => [l.level, l.method, l.path, l.status, l.namespace])).toEqual([
      [LEVEL.debug, 'POST', '/v2/pipeline', 200, 'default'],
      [LEVEL.debug, 'POST', '/v2/pipeline', 401, 'default'],
    ]);
    for (const r of requests) expect(typeof r.durationMs === 'number' && r.durationMs >= 0, `durationMs of ${JSON.stringify(r)}`).toBe(true);
    expect(lines.filter((l) => /auth: basic \(a JWT key is also configured; as in sqld, basic auth is used\)/.test(l.msg)).map((l) => l.level)).toEqual([LEVEL.info]);
    const stderr = child.stderr();
    for (const secret of [BASIC_CREDENTIAL, 'body-marker', 'in-the-query', jwtKey]) expect(stderr, `stderr holds ${secret}`).not.toContain(secret);
  });

  it('--log-level warn wins over RUST_LOG=debug: no info or debug lines; warnings still logged', async ({ expect }) => {
    // SQLD_SOFT_HEAP_LIMIT_MB is read by nothing: its start-up warning must still appear.
    const child = serve(tempCwd('warn'), ['--log-level', 'warn'], { RUST_LOG: 'debug', SQLD_SOFT_HEAP_LIMIT_MB: '64' });
    const url = await bannerUrl(child);
    expect(await pipeline(url)).toBe(200);
    expect(await sigterm(child)).toEqual(CLEAN_EXIT);

    const lines = logLines(child);
    expect(lines.filter((l) => l.level < LEVEL.warn), 'lines below warn').toEqual([]);
    expect(lines.map((l) => [l.level, l.msg.split(':')[0]])).toEqual([[LEVEL.warn, 'ignoring environment variables libsqlctl does not read']]);
  });

  it('an invalid --log-level: exit 2, one Error line naming the value, nothing started or created', async ({ expect }) => {
    const cwd = tempCwd('invalid');
    const child = serve(cwd, ['--log-level', 'loud']);
    expect(await within(child.exited, STEP_MS, 'exit on a bad --log-level')).toEqual({ code: 2, signal: null });
    const lines = child.stderr().split('\n').filter((l) => l.trim() !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^Error: --log-level: unknown level `loud`; expected one of trace, debug, info, warn, error, off$/);
    expect(child.stdout()).toBe('');
    expect(fs.readdirSync(cwd)).toEqual([]);
  });

  it('--initial-idle-shutdown-timeout-s 1: an idle server exits 0 by itself', async ({ expect }) => {
    const child = serve(tempCwd('initial-idle'), ['--initial-idle-shutdown-timeout-s', '1']);
    await bannerUrl(child);
    expect(await within(child.exited, STEP_MS, `initial idle shutdown; stderr:\n${child.stderr()}`)).toEqual(CLEAN_EXIT);
    const msgs = logLines(child).map((l) => [l.msg, l.reason]);
    expect(msgs.slice(-2)).toEqual([
      ['shutting down', 'idle for 1 s'],
      ['stopped', undefined],
    ]);
  });

  it('--initial-idle-shutdown-timeout-s applies only until the first request: then --idle-shutdown-timeout-s does', async ({ expect }) => {
    // 5 s to make the first request in (the banner comes right after the timer started), then 1 s idle.
    const child = serve(tempCwd('initial-then-idle'), ['--initial-idle-shutdown-timeout-s', '5', '--idle-shutdown-timeout-s', '1']);
    const url = await bannerUrl(child);
    expect(await pipeline(url)).toBe(200);
    const requestAt = performance.now();
    expect(await within(child.exited, STEP_MS, `idle shutdown; stderr:\n${child.stderr()}`)).toEqual(CLEAN_EXIT);
    expect(performance.now() - requestAt, 'request → exit (ms): the 1 s timeout, not the initial 5 s').toBeLessThan(4000);
    expect(logLines(child).find((l) => l.msg === 'shutting down')?.reason).toBe('idle for 1 s');
  });
});
