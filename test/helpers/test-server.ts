import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveServeConfig, type ServeConfig, type ServeEnv, type ServeFlags } from '../../src/config/serve-config.js';
import { serveFlagDefaults } from '../../src/config/serve-flags.js';
import type { UploaderTunables } from '../../src/backup/uploader/options.js';
import { startServer, type RunningServer, type ServerOverrides } from '../../src/server/server.js';

export interface TestServer {
  server: RunningServer;
  url: string;
  wsUrl: string;
  dbPath: string;
  close(): Promise<void>;
}

/** Test servers: loopback, a free port, a short shutdown, no banner, only warnings and errors logged. */
const TEST_FLAGS: Partial<ServeFlags> = { 'http-listen-addr': '127.0.0.1:0', 'shutdown-timeout': 5, 'no-welcome': true, 'log-level': 'warn' };

export function tempDir(prefix = 'libsqlctl-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * Starts a real server in this process on a free loopback port and a fresh temp data directory.
 * `limits` overrides timings that have no flag (sqld's 5 s transaction timeout, 10 s stream expiry)
 * so tests of those paths stay fast without changing the logic. `seams`: the server's overrides (a
 * logger to read) and uploader tunables that have no flag (retry pacing, a staging cap below 1 MB, the
 * lag report's thresholds), handed to every namespace's uploader with the backup policy.
 */
export async function startTestServer(
  flags: Partial<ServeFlags> = {},
  env: Pick<ServeEnv, 'SQLD_AUTH_JWT_KEY' | 'bottomless'> = {},
  limits: Partial<ServeConfig['limits']> = {},
  seams: { overrides?: ServerOverrides; backupTunables?: Partial<UploaderTunables> } = {},
): Promise<TestServer> {
  // A temp dir made here is removed again by close(); a given --db-path is the caller's to remove.
  const ownDir = flags['db-path'] === undefined ? tempDir() : null;
  const dbPath = flags['db-path'] ?? path.join(ownDir!, 'data.sqld');
  const config = await resolveServeConfig({ ...serveFlagDefaults(), ...TEST_FLAGS, ...flags, 'db-path': dbPath }, env);
  const bottomless = config.bottomless && seams.backupTunables ? { ...config.bottomless, policy: { ...config.bottomless.policy, ...seams.backupTunables } } : config.bottomless;
  let server: RunningServer;
  try {
    server = await startServer({ ...config, bottomless, limits: { ...config.limits, ...limits } }, seams.overrides);
  } catch (err) {
    if (ownDir) fs.rmSync(ownDir, { recursive: true, force: true });
    throw err;
  }
  const { port } = server.httpAddress;
  return {
    server,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    dbPath,
    close: async () => {
      try {
        await server.close();
      } finally {
        if (ownDir) fs.rmSync(ownDir, { recursive: true, force: true });
      }
    },
  };
}

/** POSTs a JSON (or raw string) body and returns status, content type and the parsed or raw body. */
export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; type: string; body: unknown; text: string }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text) as unknown;
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: parsed, text };
}
