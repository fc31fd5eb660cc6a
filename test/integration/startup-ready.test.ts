import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { resolveServeConfig } from '../../src/config/serve-config.js';
import { serveFlagDefaults } from '../../src/config/serve-flags.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { postJson, tempDir } from '../helpers/test-server.js';

const dirs: string[] = [];
const servers: RunningServer[] = [];

afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

async function config(dbPath: string) {
  return resolveServeConfig({ ...serveFlagDefaults(), 'http-listen-addr': '127.0.0.1:0', 'no-welcome': true, 'log-level': 'warn', 'shutdown-timeout': 5, 'db-path': dbPath }, {});
}

/** A server held in its starting phase (listening, databases not opened) until `release()`. */
async function holdStarting(dbPath: string, open: Promise<void>) {
  let onListening!: (a: { host: string; port: number }) => void;
  const listening = new Promise<{ host: string; port: number }>((resolve) => (onListening = resolve));
  const starting = startServer(await config(dbPath), { onListening, beforeOpen: () => open });
  // A rejected start is the caller's to await; keep it from counting as unhandled meanwhile.
  starting.catch(() => {});
  return { starting, address: await listening };
}

/** The status a WebSocket upgrade gets (101 when it is accepted). */
function upgradeStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['hrana3']);
    ws.on('open', () => {
      ws.close();
      resolve(101);
    });
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
    });
    ws.on('error', reject);
  });
}

const SELECT_1 = { requests: [{ type: 'execute', stmt: { sql: 'SELECT 1' } }, { type: 'close' }] };

describe('ready means ready', () => {
  it('answers 503 on user routes and /health while the databases open, then serves', async () => {
    const dir = tempDir('libsqlctl-ready-');
    dirs.push(dir);
    const dbPath = path.join(dir, 'data.sqld');
    let release!: () => void;
    const { starting, address } = await holdStarting(dbPath, new Promise<void>((resolve) => (release = resolve)));
    const base = `http://127.0.0.1:${address.port}`;

    const health = await fetch(`${base}/health`);
    expect(health.status).toBe(503);
    expect(health.headers.get('retry-after')).toBe('1');
    const pipeline = await postJson(`${base}/v2/pipeline`, SELECT_1);
    expect(pipeline.status).toBe(503);
    expect(Object.keys(pipeline.body as object)).toEqual(['error']);
    expect((pipeline.body as { error: string }).error).toMatch(/starting/);
    const legacy = await postJson(`${base}/`, { statements: ['SELECT 1'] });
    expect(legacy.status).toBe(503);
    expect(await upgradeStatus(`ws://127.0.0.1:${address.port}/`)).toBe(503);
    // /version is static and answers at once
    expect((await fetch(`${base}/version`)).status).toBe(200);
    // the default database really is not open yet
    expect(fs.existsSync(path.join(dbPath, 'dbs', 'default', 'data'))).toBe(false);

    release();
    const server = await starting;
    servers.push(server);
    expect(server.httpAddress.port).toBe(address.port);
    expect((await fetch(`${base}/health`)).status).toBe(200);
    const ok = await postJson(`${base}/v2/pipeline`, SELECT_1);
    expect(ok.status).toBe(200);
    expect(await upgradeStatus(`ws://127.0.0.1:${address.port}/`)).toBe(101);
  });

  it('a start that fails while opening stops listening and releases the data directory', async () => {
    const dir = tempDir('libsqlctl-ready-');
    dirs.push(dir);
    const dbPath = path.join(dir, 'data.sqld');
    let fail!: (err: Error) => void;
    const { starting, address } = await holdStarting(dbPath, new Promise<void>((_resolve, reject) => (fail = reject)));
    expect((await fetch(`http://127.0.0.1:${address.port}/health`)).status).toBe(503);

    fail(new Error('restore failed'));
    await expect(starting).rejects.toThrow('restore failed');
    await expect(fetch(`http://127.0.0.1:${address.port}/health`)).rejects.toThrow();
    // the lock is free again: the same data directory starts
    const server = await startServer(await config(dbPath));
    servers.push(server);
    expect((await fetch(`http://127.0.0.1:${server.httpAddress.port}/health`)).status).toBe(200);
  });
});
