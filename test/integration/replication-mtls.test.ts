/**
 * A primary and replicas over the inter-node port with mutual TLS (spec §1, §6.1; docs/REPLICATION.md):
 * certificates made with the openssl CLI (a CA, the primary's certificate for the name `sqld`, a
 * replica's client certificate, and a client certificate of another CA). A verified replica gets
 * the log and its forwarded principal is trusted; replicas that cannot prove themselves keep running
 * with nothing, say why in their log and answer forwarded writes with PROXY_ERROR. The `--grpc-tls`
 * configuration errors are checked on the real CLI.
 */
import { rejectionOf } from '../helpers/rejection.js';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createClient, LibsqlError, type Client } from '@libsql/client';
import { SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveServeConfig, type ServeFlags } from '../../src/config/serve-config.js';
import { serveFlagDefaults } from '../../src/config/serve-flags.js';
import { createLogger, type Logger } from '../../src/engine/logger.js';
import type { ReplicaRole } from '../../src/engine/roles/replica-role.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { killAllChildServers, spawnCli, within } from '../helpers/child-server.js';
import { requireOpenssl } from '../helpers/openssl.js';
import { tempDir } from '../helpers/test-server.js';


// ---- nodes with their own log ----

/** A logger whose lines are kept, and awaitable by message. */
class Logs {
  readonly lines: { level: number; msg: string }[] = [];
  readonly #waiters = new Set<{ re: RegExp; resolve: () => void }>();
  readonly logger: Logger = createLogger({
    level: 'info',
    destination: {
      write: (chunk: string) => {
        for (const text of chunk.split('\n')) {
          if (text.trim() === '') continue;
          const line = JSON.parse(text) as { level: number; msg: string };
          this.lines.push(line);
          for (const w of this.#waiters) if (w.re.test(line.msg)) w.resolve();
        }
      },
    },
  });

  find(re: RegExp): { level: number; msg: string }[] {
    return this.lines.filter((l) => re.test(l.msg));
  }

  /** Resolves once a line matches (at once if one already did). */
  waitFor(re: RegExp, ms = 10_000): Promise<void> {
    if (this.find(re).length > 0) return Promise.resolve();
    const found = new Promise<void>((resolve) => {
      const w = { re, resolve: () => (this.#waiters.delete(w), resolve()) };
      this.#waiters.add(w);
    });
    return within(found, ms, `a log line matching ${re}`);
  }
}

interface Node {
  server: RunningServer;
  url: string;
  logs: Logs;
}

const nodes: Node[] = [];
const dirs: string[] = [];
const clients: Client[] = [];

async function startNode(flags: Partial<ServeFlags>): Promise<Node> {
  const dir = tempDir('libsqlctl-mtls-node-');
  dirs.push(dir);
  const logs = new Logs();
  const config = await resolveServeConfig({ ...serveFlagDefaults(), 'http-listen-addr': '127.0.0.1:0', 'shutdown-timeout': 5, 'no-welcome': true, ...flags, 'db-path': path.join(dir, 'data.sqld') }, {});
  const server = await startServer(config, { logger: logs.logger });
  const node = { server, url: `http://127.0.0.1:${server.httpAddress.port}`, logs };
  nodes.push(node);
  return node;
}

function client(url: string, authToken: string): Client {
  const c = createClient({ url, authToken, intMode: 'number' });
  clients.push(c);
  return c;
}

const failureOf = (p: Promise<unknown>): Promise<LibsqlError> => rejectionOf(p, LibsqlError);

const jwtKey = (): { privateKey: KeyObject; pem: string } => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return { privateKey, pem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
};
const sign = (key: KeyObject, claims: JWTPayload = {}): Promise<string> => new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' }).sign(key);

afterAll(async () => {
  for (const c of clients) c.close();
  for (const n of nodes.reverse()) await n.server.close().catch(() => undefined);
  await killAllChildServers();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('replication over mutual TLS', () => {
  let certs: string;
  const file = (name: string): string => path.join(certs, name);
  // The primary and the replica validate tokens with different keys: only a trusted principal gets through.
  const primaryKey = jwtKey();
  const replicaKey = jwtKey();
  let primary: Node;
  let grpcPort: number;
  let admin: Client;

  const replicaFlags = (extra: Partial<ServeFlags>, port = grpcPort): Partial<ServeFlags> => ({
    'primary-grpc-url': `https://127.0.0.1:${port}`,
    'auth-jwt-key-file': file('replica-jwt.pem'),
    'write-forward-timeout-ms': 5000,
    ...extra,
  });

  beforeAll(async () => {
    requireOpenssl();
    certs = tempDir('libsqlctl-mtls-certs-');
    dirs.push(certs);
    const ssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: certs, stdio: 'ignore' });
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    for (const ca of ['ca', 'other-ca']) {
      ssl('req', '-x509', ...ec, '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '2', '-subj', `/CN=${ca}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
    }
    const leaves = [
      ['primary', 'serverAuth', 'ca', '1'],
      ['replica', 'clientAuth', 'ca', '2'],
      ['stranger', 'clientAuth', 'other-ca', '3'],
    ] as const;
    for (const [name, usage, ca, serial] of leaves) {
      // sqld replicas expect the primary's certificate to be issued for `sqld`.
      fs.writeFileSync(file(`${name}.ext`), `subjectAltName=DNS:sqld\nextendedKeyUsage=${usage}\n`);
      ssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
      ssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-set_serial', serial, '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.pem`);
    }
    fs.writeFileSync(file('primary-jwt.pem'), primaryKey.pem);
    fs.writeFileSync(file('replica-jwt.pem'), replicaKey.pem);
    primary = await startNode({
      'grpc-listen-addr': '127.0.0.1:0',
      'grpc-tls': true,
      'grpc-cert-file': file('primary.pem'),
      'grpc-key-file': file('primary.key'),
      'grpc-ca-cert-file': file('ca.pem'),
      'auth-jwt-key-file': file('primary-jwt.pem'),
    });
    grpcPort = primary.server.cluster.grpcAddress!.port;
    admin = client(primary.url, await sign(primaryKey.privateKey));
    await admin.batch(['CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT)', "INSERT INTO t (who) VALUES ('primary 1'), ('primary 2')"]);
  });

  const whoOnPrimary = async (): Promise<string[]> => (await admin.execute('SELECT who FROM t ORDER BY id')).rows.map((r) => r[0] as string);

  it('a replica with a certificate of the CA gets the rows, and its forwarded writes are trusted', async () => {
    const replica = await startNode(replicaFlags({ 'primary-grpc-cert-file': file('replica.pem'), 'primary-grpc-key-file': file('replica.key'), 'primary-grpc-ca-cert-file': file('ca.pem') }));
    const index = (await primary.server.context.namespaces.get('default')).replicationIndex()!;
    const role = (await replica.server.context.namespaces.get('default')).role as ReplicaRole;
    await within(role.waitForIndex(index), 10_000, 'the replica to apply the primary’s log');
    await replica.logs.waitFor(/^connected to the primary$/);
    const user = client(replica.url, await sign(replicaKey.privateKey));
    expect((await user.execute('SELECT who FROM t ORDER BY id')).rows.map((r) => r[0])).toStrictEqual(['primary 1', 'primary 2']);
    // The primary does not know the replica's JWT key: the write goes through only because the
    // replica proved with its certificate that it is a node, so its principal is trusted.
    await failureOf(client(primary.url, await sign(replicaKey.privateKey)).execute('SELECT 1'));
    const res = await user.execute("INSERT INTO t (who) VALUES ('through the replica')");
    expect(res.rowsAffected).toBe(1);
    expect(await whoOnPrimary()).toStrictEqual(['primary 1', 'primary 2', 'through the replica']);
    // Read-your-writes on the replica.
    expect((await user.execute('SELECT count(*) FROM t')).rows[0]?.[0]).toBe(3);
    expect(replica.server.cluster.replicationStatus('default')).toMatchObject({ connected: true, lastError: null, lagFrames: 0n });
    // A read-only user of the replica stays read-only: refused before anything is forwarded.
    const ro = await failureOf(client(replica.url, await sign(replicaKey.privateKey, { a: 'ro' })).execute("INSERT INTO t (who) VALUES ('ro')"));
    expect([ro.code, (ro.cause as { status?: unknown } | undefined)?.status]).toStrictEqual(['SERVER_ERROR', 403]);
    expect(await whoOnPrimary()).toHaveLength(3);
  });

  const refused: { name: string; flags: Record<string, string>; cause: RegExp }[] = [
    { name: 'without a client certificate', flags: { 'primary-grpc-ca-cert-file': 'ca.pem' }, cause: /certificate required/ },
    { name: 'with a certificate of another CA', flags: { 'primary-grpc-cert-file': 'stranger.pem', 'primary-grpc-key-file': 'stranger.key', 'primary-grpc-ca-cert-file': 'ca.pem' }, cause: /the primary is unavailable/ },
    { name: 'that does not trust the primary’s CA', flags: { 'primary-grpc-cert-file': 'replica.pem', 'primary-grpc-key-file': 'replica.key', 'primary-grpc-ca-cert-file': 'other-ca.pem' }, cause: /self-signed certificate/ },
  ];

  it.each(refused)('a replica $name is refused: it keeps running, logs "lost the primary", has no rows, forwarded writes are PROXY_ERROR', async ({ flags, cause }) => {
    const replica = await startNode(replicaFlags(Object.fromEntries(Object.entries(flags).map(([k, v]) => [k, file(v)]))));
    await replica.logs.waitFor(/^lost the primary: /);
    const lost = replica.logs.find(/^lost the primary: /);
    expect(lost[0]?.level).toBe(40);
    expect(lost[0]?.msg).toMatch(cause);
    expect(replica.logs.find(/connected to the primary/)).toStrictEqual([]);
    expect(replica.server.cluster.replicationStatus('default')).toMatchObject({ connected: false, logId: null, appliedIndex: null });
    const health = await fetch(`${replica.url}/health`);
    expect(health.status).toBe(200);
    const user = client(replica.url, await sign(replicaKey.privateKey));
    expect((await failureOf(user.execute('SELECT * FROM t'))).message).toMatch(/no such table: t/);
    const before = await whoOnPrimary();
    const write = await failureOf(user.execute("INSERT INTO t (who) VALUES ('refused replica')"));
    expect(write.code).toBe('PROXY_ERROR');
    expect(write.message).toMatch(/^PROXY_ERROR: error executing a request on the primary: the primary is unavailable/);
    expect(await whoOnPrimary()).toStrictEqual(before);
  });

  it('a refused replica warns once per cause, not at every reconnection attempt', async () => {
    // A TCP relay in front of the primary's port counts the replica's connection attempts.
    let attempts = 0;
    let onAttempt = (): void => undefined;
    const relay = net.createServer((socket) => {
      attempts++;
      onAttempt();
      const upstream = net.connect(grpcPort, '127.0.0.1');
      socket.pipe(upstream).pipe(socket);
      upstream.on('error', () => socket.destroy());
      socket.on('error', () => upstream.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    try {
      const port = (relay.address() as net.AddressInfo).port;
      const replica = await startNode(replicaFlags({ 'primary-grpc-ca-cert-file': file('ca.pem') }, port));
      const third = new Promise<void>((resolve) => {
        onAttempt = () => void (attempts >= 3 && resolve());
        onAttempt();
      });
      await within(third, 15_000, 'three connection attempts of the replica');
      await replica.logs.waitFor(/^lost the primary: /);
      const warnings = replica.logs.find(/^lost the primary: /).map((l) => l.msg);
      expect(warnings, warnings.join('\n')).toHaveLength(1);
    } finally {
      relay.close();
    }
  });
});

describe('--grpc-tls configuration errors (the CLI)', () => {
  const serve = async (args: string[]): Promise<{ code: number | null; stderr: string }> => {
    const dir = tempDir('libsqlctl-mtls-cli-');
    dirs.push(dir);
    const child = spawnCli(['serve', '--db-path', path.join(dir, 'data.sqld'), '--http-listen-addr', '127.0.0.1:0', '--grpc-listen-addr', '127.0.0.1:0', ...args]);
    const exit = await within(child.exited, 15_000, `libsqlctl serve ${args.join(' ')} to exit`);
    return { code: exit.code, stderr: child.stderr() };
  };

  it('--grpc-tls without the certificate files, or with one that does not exist, does not start (exit 2)', async () => {
    const dir = tempDir('libsqlctl-mtls-cli-');
    dirs.push(dir);
    const pem = path.join(dir, 'some.pem');
    fs.writeFileSync(pem, 'not really a certificate');
    const [none, partial, missing, noTls] = await Promise.all([
      serve(['--grpc-tls']),
      serve(['--grpc-tls', '--grpc-cert-file', pem, '--grpc-key-file', pem]),
      serve(['--grpc-tls', '--grpc-cert-file', path.join(dir, 'missing.pem'), '--grpc-key-file', pem, '--grpc-ca-cert-file', pem]),
      serve(['--grpc-cert-file', pem]),
    ]);
    const needs = 'Error: --grpc-tls needs --grpc-cert-file, --grpc-key-file and --grpc-ca-cert-file\nTry: Replicas must present a client certificate signed by the CA (mutual TLS).';
    expect(none).toStrictEqual({ code: 2, stderr: `${needs}\n` });
    expect(partial).toStrictEqual({ code: 2, stderr: `${needs}\n` });
    expect(missing).toStrictEqual({ code: 2, stderr: `Error: --grpc-cert-file: cannot read ${path.join(dir, 'missing.pem')}: ENOENT\n` });
    expect(noTls).toStrictEqual({ code: 2, stderr: 'Error: --grpc-cert-file needs --grpc-tls\n' });
  });
});
