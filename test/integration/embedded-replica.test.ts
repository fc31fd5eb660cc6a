/**
 * The `libsql` npm package (and `@libsql/client` with `file:` + `syncUrl`) as an embedded replica of
 * a real primary (spec §6.1, §7.2; design.md §2). Both APIs call the native module synchronously —
 * `db.sync()` blocks its thread until the server answered, and @libsql/client's `sync()` awaits the
 * same native call (lib-esm/sqlite3.js) — so they run in a worker thread while this thread's event
 * loop serves the in-process primary. A recording HTTP relay sits between the replica and the
 * primary: it shows which gRPC-web calls the client made, their offsets and their outcomes, and it
 * lets the same URL lead to another primary (a new log).
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { createClient, type Client, type InValue, type ResultSet } from '@libsql/client';
import { SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrpcWebDecoder } from '../../src/rpc/grpc-web/framing.js';
import { codecs } from '../../src/rpc/proto.js';
import { startTestServer, tempDir, type TestServer } from '../helpers/test-server.js';

const require = createRequire(import.meta.url);
const LIBSQL = require.resolve('libsql');
const CLIENT_CJS = require.resolve('@libsql/client');

// ---- the replica in a worker thread ----

/** CommonJS, evaluated in the worker: one `libsql` Database and/or one @libsql/client client, driven by messages. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.libsql);
const { createClient } = require(workerData.client);
let db = null;
let client = null;
const ops = {
  open: (m) => { db = new Database(m.file, m.options); return null; },
  close: () => { if (db) db.close(); db = null; return null; },
  sync: () => db.sync(),
  all: (m) => db.prepare(m.sql).all(),
  exec: (m) => { db.exec(m.sql); return null; },
  clientOpen: (m) => { client = createClient(m.config); return null; },
  clientSync: async () => { const r = await client.sync(); return r === undefined ? null : { frames_synced: r.frames_synced, frame_no: r.frame_no }; },
  clientExecute: async (m) => { const rs = await client.execute(m.sql); return rs.rows.map((row) => Object.fromEntries(rs.columns.map((c, i) => [c, row[i]]))); },
  clientClose: () => { if (client) client.close(); client = null; return null; },
};
parentPort.on('message', async (m) => {
  try {
    parentPort.postMessage({ id: m.id, ok: true, value: await ops[m.op](m) });
  } catch (e) {
    parentPort.postMessage({ id: m.id, ok: false, message: String((e && e.message) || e), code: e && e.code });
  }
});
`;

type Row = Record<string, unknown>;
interface SyncResult {
  frames_synced: number;
  frame_no: number;
}
type Answer = { id: number; ok: true; value: unknown } | { id: number; ok: false; message: string; code?: string };

class ReplicaWorker {
  readonly #worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { libsql: LIBSQL, client: CLIENT_CJS } });
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #next = 0;

  constructor() {
    this.#worker.on('message', (a: Answer) => {
      const p = this.#pending.get(a.id);
      this.#pending.delete(a.id);
      if (a.ok) p?.resolve(a.value);
      else p?.reject(Object.assign(new Error(a.message), { code: a.code }));
    });
    const failAll = (err: Error): void => {
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
    };
    this.#worker.on('error', failAll);
    this.#worker.on('exit', (code) => failAll(new Error(`the replica worker exited (${code})`)));
  }

  call<T>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#worker.postMessage({ ...args, op, id });
    });
  }

  open(file: string, syncUrl: string, authToken?: string): Promise<null> {
    return this.call('open', { file, options: authToken === undefined ? { syncUrl } : { syncUrl, authToken } });
  }
  sync = (): Promise<SyncResult> => this.call('sync');
  all = (sql: string): Promise<Row[]> => this.call('all', { sql });
  exec = (sql: string): Promise<null> => this.call('exec', { sql });

  async stop(): Promise<void> {
    await this.call('close').catch(() => undefined);
    await this.call('clientClose').catch(() => undefined);
    await this.#worker.terminate();
  }
}

// ---- a recording relay in front of the primary ----

interface Exchange {
  call: string;
  requestType: string | undefined;
  httpStatus: number;
  /** LogOffset.next_offset of log calls. */
  offset?: bigint;
  grpcStatus?: string;
  grpcMessage?: string;
  /** Frames answered: BatchLogEntries' `frames`, or the number of Snapshot messages. */
  frames?: number;
}

function inspect(x: Exchange, request: Buffer, response: Buffer): void {
  if (!x.call.startsWith('POST /wal_log.') && !x.call.startsWith('POST /proxy.')) return;
  const [req] = new GrpcWebDecoder().push(request);
  if (req?.kind === 'data' && x.call.startsWith('POST /wal_log.') && !x.call.endsWith('/Hello')) x.offset = codecs.LogOffset.decode(req.payload).nextOffset;
  const frames = new GrpcWebDecoder().push(response);
  const data = frames.filter((f) => f.kind === 'data');
  if (x.call.endsWith('/BatchLogEntries')) x.frames = data.reduce((n, f) => n + codecs.Frames.decode(f.payload).frames.length, 0);
  if (x.call.endsWith('/Snapshot')) x.frames = data.length;
  const trailer = frames.find((f) => f.kind === 'trailer');
  if (trailer?.kind === 'trailer') {
    x.grpcStatus = trailer.trailers.get('grpc-status');
    const message = trailer.trailers.get('grpc-message');
    if (message !== undefined) x.grpcMessage = message;
  }
}

class Relay {
  readonly log: Exchange[] = [];
  upstream: TestServer;
  readonly #agent = new http.Agent({ keepAlive: true });
  readonly #server: http.Server;

  constructor(upstream: TestServer) {
    this.upstream = upstream;
    this.#server = http.createServer((req, res) => {
      const target = new URL(this.upstream.url);
      const reqChunks: Buffer[] = [];
      req.on('data', (c: Buffer) => reqChunks.push(c));
      const up = http.request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers, agent: this.#agent }, (ur) => {
        const resChunks: Buffer[] = [];
        ur.on('data', (c: Buffer) => resChunks.push(c));
        ur.on('end', () => {
          const x: Exchange = { call: `${req.method} ${req.url}`, requestType: req.headers['content-type'], httpStatus: ur.statusCode ?? 0 };
          inspect(x, Buffer.concat(reqChunks), Buffer.concat(resChunks));
          this.log.push(x);
        });
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      });
      up.on('error', (err) => res.destroy(err));
      req.pipe(up);
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Exchanges logged since `from`, by call name (the part after the last slash). */
  calls(from = 0): string[] {
    return this.log.slice(from).map((x) => x.call.slice(x.call.lastIndexOf('/') + 1));
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#agent.destroy();
  }
}

// ---- helpers ----

/** Blobs as hex, so rows from libsql (Uint8Array), @libsql/client (ArrayBuffer) compare equal. */
function norm(rows: readonly Row[]): Row[] {
  const value = (v: unknown): unknown => (v instanceof ArrayBuffer || ArrayBuffer.isView(v) ? Buffer.from(v instanceof ArrayBuffer ? v : v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength)).toString('hex') : v);
  return rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, value(v)])));
}

function plain(rs: ResultSet): Row[] {
  return rs.rows.map((row) => Object.fromEntries(rs.columns.map((c, i) => [c, row[i] as InValue])));
}

const digest = (rows: readonly Row[]): string => createHash('sha256').update(JSON.stringify(norm(rows))).digest('hex');

async function primaryIndex(srv: TestServer): Promise<number> {
  const index = (await srv.server.context.namespaces.get('default')).replicationIndex();
  if (index === null) throw new Error('the primary has an empty log');
  return Number(index);
}

const dirs: string[] = [];
const workers: ReplicaWorker[] = [];
const clients: Client[] = [];
const stops: (() => Promise<void>)[] = [];

function localFile(name: string): string {
  const dir = tempDir('libsqlctl-embedded-');
  dirs.push(dir);
  return path.join(dir, `${name}.db`);
}

function replica(): ReplicaWorker {
  const w = new ReplicaWorker();
  workers.push(w);
  return w;
}

function http1(url: string, authToken?: string): Client {
  const c = createClient({ url, intMode: 'number', ...(authToken === undefined ? {} : { authToken }) });
  clients.push(c);
  return c;
}

async function primary(flags: Parameters<typeof startTestServer>[0] = {}): Promise<{ srv: TestServer; relay: Relay; url: string }> {
  const srv = await startTestServer(flags);
  const relay = new Relay(srv);
  const url = await relay.listen();
  stops.push(() => relay.close(), () => srv.close());
  return { srv, relay, url };
}

afterAll(async () => {
  await Promise.allSettled(workers.map((w) => w.stop()));
  for (const c of clients) c.close();
  for (const stop of stops.reverse()) await stop().catch(() => undefined);
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

// ---- tests ----

describe('libsql embedded replica of a primary without auth', () => {
  let p: Awaited<ReturnType<typeof primary>>;
  let admin: Client;
  const SELECT = 'SELECT id, i, r, s, b, n FROM t ORDER BY id';

  beforeAll(async () => {
    p = await primary();
    admin = http1(p.srv.url);
    await admin.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, i INTEGER, r REAL, s TEXT, b BLOB, n)');
    await admin.execute("INSERT INTO t (i, r, s, b, n) VALUES (42, 1.5, 'héllo', x'00ff10', NULL), (-7, -0.25, '', x'', NULL)");
  });

  it('sync() brings the rows of the primary, after GET /info answered 404, over gRPC-web', async () => {
    const r = replica();
    const from = p.relay.log.length;
    await r.open(localFile('basic'), p.url);
    const result = await r.sync();
    expect(result.frame_no).toBe(await primaryIndex(p.srv));
    expect(result.frames_synced).toBe(result.frame_no + 1);
    expect(norm(await r.all(SELECT))).toStrictEqual(norm(plain(await admin.execute(SELECT))));
    const log = p.relay.log.slice(from);
    // The Turso sync protocol probe first; only a 404 sends the client to gRPC-web (design.md §2).
    expect(log[0]).toMatchObject({ call: 'GET /info', httpStatus: 404 });
    expect(log.slice(1).map((x) => [x.call, x.requestType, x.httpStatus, x.grpcStatus])).toStrictEqual([
      ['POST /wal_log.ReplicationLog/Hello', 'application/grpc-web', 200, '0'],
      ['POST /wal_log.ReplicationLog/BatchLogEntries', 'application/grpc-web', 200, '0'],
    ]);
    expect(log[2]).toMatchObject({ offset: 0n, frames: result.frames_synced });
    // Nothing new: an empty batch.
    const again = await r.sync();
    expect(again).toStrictEqual({ frames_synced: 0, frame_no: result.frame_no });
  });

  it('a write through the replica (Proxy.Execute) lands on the primary, and the next sync() has it locally', async () => {
    const r = replica();
    await r.open(localFile('write'), p.url);
    await r.sync();
    const from = p.relay.log.length;
    await r.exec("INSERT INTO t (i, s) VALUES (1000, 'from the replica')");
    expect(p.relay.log.slice(from).find((x) => x.call.endsWith('/Execute'))).toMatchObject({ httpStatus: 200, grpcStatus: '0' });
    expect(plain(await admin.execute('SELECT i, s FROM t WHERE i = 1000'))).toStrictEqual([{ i: 1000, s: 'from the replica' }]);
    await r.sync();
    expect(norm(await r.all(SELECT))).toStrictEqual(norm(plain(await admin.execute(SELECT))));
    expect((await r.sync()).frame_no).toBe(await primaryIndex(p.srv));
  });

  it('a new database behind the same URL (new log id): the replica starts over from frame 0', async () => {
    const r = replica();
    const file = localFile('newlog');
    await r.open(file, p.url);
    await r.sync();
    expect(await r.all('SELECT count(*) AS n FROM t')).toStrictEqual([{ n: 3 }]);
    const fresh = await startTestServer();
    stops.push(() => fresh.close());
    const c = http1(fresh.url);
    await c.batch(['CREATE TABLE other (x TEXT)', 'CREATE TABLE more (y)', "INSERT INTO other VALUES ('new primary')"]);
    const old = p.relay.upstream;
    p.relay.upstream = fresh;
    try {
      const from = p.relay.log.length;
      const result = await r.sync();
      expect(result.frame_no).toBe(await primaryIndex(fresh));
      // Every frame of the new log, from 0.
      expect(result.frames_synced).toBe(result.frame_no + 1);
      expect(p.relay.log.slice(from).filter((x) => x.frames !== undefined && x.frames > 0)).toMatchObject([{ offset: 0n }]);
      expect(await r.all('SELECT x FROM other')).toStrictEqual([{ x: 'new primary' }]);
      // A connection opened afresh sees exactly the new database.
      await r.call('close');
      await r.open(file, p.url);
      expect(await r.all("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")).toStrictEqual([{ name: 'more' }, { name: 'other' }]);
      expect(await r.all('PRAGMA integrity_check')).toStrictEqual([{ integrity_check: 'ok' }]);
      expect(await r.sync()).toStrictEqual({ frames_synced: 0, frame_no: result.frame_no });
    } finally {
      p.relay.upstream = old;
    }
  });
});

describe('large syncs and compacted logs', () => {
  it('2 000 rows with 2 KB blobs: several BatchLogEntries, each ending on a commit, frames as the primary logged them', async () => {
    const p = await primary();
    const admin = http1(p.srv.url);
    await admin.execute('CREATE TABLE big (id INTEGER PRIMARY KEY, v BLOB)');
    for (let i = 0; i < 40; i++) await admin.batch(Array.from({ length: 50 }, () => 'INSERT INTO big (v) VALUES (randomblob(2048))'));
    const index = await primaryIndex(p.srv);
    expect(index).toBeGreaterThan(2 * 1024);
    const r = replica();
    await r.open(localFile('big'), p.url);
    const from = p.relay.log.length;
    const result = await r.sync();
    expect(result).toStrictEqual({ frames_synced: index + 1, frame_no: index });
    const batches = p.relay.log.slice(from).filter((x) => x.call.endsWith('/BatchLogEntries') && (x.frames ?? 0) > 0);
    expect(batches.length).toBeGreaterThanOrEqual(2);
    // At least 1024 frames per batch (but the last), then up to the end of that transaction (~55 frames here).
    for (const b of batches.slice(0, -1)) expect(b.frames).toBeGreaterThanOrEqual(1024);
    for (const b of batches) expect(b.frames).toBeLessThan(1024 + 100);
    let offset = 0n;
    for (const b of batches) {
      expect(b.offset).toBe(offset);
      offset += BigInt(b.frames ?? 0);
    }
    const SELECT = 'SELECT id, v FROM big ORDER BY id';
    const local = await r.all(SELECT);
    expect(local).toHaveLength(2000);
    expect(digest(local)).toBe(digest(plain(await admin.execute(SELECT))));
  });

  it('after the primary compacted its log (--max-log-size), a new replica and a behind one go through Snapshot', async () => {
    const p = await primary({ 'max-log-size': 0.1 }); // 24 frames
    const admin = http1(p.srv.url);
    const log = (await p.srv.server.context.namespaces.get('default')).frames!.log;
    await admin.execute('CREATE TABLE s (id INTEGER PRIMARY KEY, v BLOB)');
    const fill = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) await admin.batch(Array.from({ length: 20 }, () => 'INSERT INTO s (v) VALUES (randomblob(1000))'));
      await log.drain(); // the compacted ranges are snapshot files now
    };
    await fill(10);
    expect(log.startFrameNo).toBeGreaterThan(0n);
    const SELECT = 'SELECT id, v FROM s ORDER BY id';

    const r = replica();
    await r.open(localFile('snap'), p.url);
    let from = p.relay.log.length;
    const first = await r.sync();
    expect(first.frame_no).toBe(await primaryIndex(p.srv));
    let exchanges = p.relay.log.slice(from);
    // The log no longer starts at 0: NEED_SNAPSHOT, then the snapshot from offset 0.
    expect(exchanges.find((x) => x.call.endsWith('/BatchLogEntries'))).toMatchObject({ offset: 0n, grpcStatus: '9', grpcMessage: 'NEED_SNAPSHOT' });
    expect(exchanges.find((x) => x.call.endsWith('/Snapshot'))).toMatchObject({ offset: 0n, grpcStatus: '0' });
    expect(digest(await r.all(SELECT))).toBe(digest(plain(await admin.execute(SELECT))));

    // The primary moves on and compacts past what the replica has: the next sync starts mid-way.
    const behind = BigInt(first.frame_no) + 1n;
    await fill(10);
    expect(log.startFrameNo).toBeGreaterThan(behind);
    from = p.relay.log.length;
    const second = await r.sync();
    expect(second.frame_no).toBe(await primaryIndex(p.srv));
    exchanges = p.relay.log.slice(from);
    expect(exchanges.find((x) => x.call.endsWith('/Snapshot'))).toMatchObject({ offset: behind, grpcStatus: '0' });
    expect(exchanges.every((x) => x.grpcStatus === '0' || x.grpcMessage === 'NEED_SNAPSHOT')).toBe(true);
    const local = await r.all(SELECT);
    expect(local).toHaveLength(400);
    expect(digest(local)).toBe(digest(plain(await admin.execute(SELECT))));
    expect(await r.all('PRAGMA integrity_check')).toStrictEqual([{ integrity_check: 'ok' }]);
  });
});

// ---- JWT ----

const { publicKey, privateKey } = generateKeyPairSync('ed25519');
const foreignKey = generateKeyPairSync('ed25519').privateKey;
const token = (claims: JWTPayload = {}, key = privateKey): Promise<string> => new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' }).sign(key);

describe('embedded replicas of a primary with JWT auth', () => {
  let p: Awaited<ReturnType<typeof primary>>;
  let admin: Client;
  const count = async (): Promise<number> => Number((await admin.execute('SELECT count(*) FROM t')).rows[0]?.[0]);

  beforeAll(async () => {
    const dir = tempDir('libsqlctl-jwt-');
    dirs.push(dir);
    const keyFile = path.join(dir, 'jwt.pem');
    fs.writeFileSync(keyFile, publicKey.export({ type: 'spki', format: 'pem' }).toString());
    p = await primary({ 'auth-jwt-key-file': keyFile });
    admin = http1(p.srv.url, await token());
    await admin.batch(['CREATE TABLE t (id INTEGER PRIMARY KEY, s TEXT)', "INSERT INTO t (s) VALUES ('one'), ('two')"]);
  });

  it('a valid token syncs and writes', async () => {
    const r = replica();
    await r.open(localFile('jwt-rw'), p.url, await token({ exp: Math.floor(Date.now() / 1000) + 3600 }));
    expect((await r.sync()).frame_no).toBe(await primaryIndex(p.srv));
    expect(await r.all('SELECT s FROM t ORDER BY id')).toStrictEqual([{ s: 'one' }, { s: 'two' }]);
    await r.exec("INSERT INTO t (s) VALUES ('three')");
    expect(await count()).toBe(3);
    await r.sync();
    expect(await r.all('SELECT s FROM t ORDER BY id')).toStrictEqual([{ s: 'one' }, { s: 'two' }, { s: 'three' }]);
  });

  it('an expired token and a token of another key: sync fails (Hello is UNAUTHENTICATED), the write is refused', async () => {
    const cases = [
      { token: await token({ exp: Math.floor(Date.now() / 1000) - 3600 }), message: 'AuthError: The JWT has expired' },
      { token: await token({}, foreignKey), message: 'AuthError: The JWT is invalid' },
    ];
    const before = await count();
    const from = p.relay.log.length;
    // Each failing sync retries Hello for a few seconds: both at once.
    await Promise.all(
      cases.map(async ({ token: t }, i) => {
        const r = replica();
        await r.open(localFile(`jwt-bad-${i}`), p.url, t);
        await expect(r.sync()).rejects.toThrow(/Replication|Unauthenticated/);
        await expect(r.all('SELECT * FROM t')).rejects.toThrow('no such table: t');
        await expect(r.exec("INSERT INTO t (s) VALUES ('refused')")).rejects.toThrow(/WriteDelegation\(status: Unauthenticated/);
      }),
    );
    const hellos = p.relay.log.slice(from).filter((x) => x.call.endsWith('/Hello'));
    for (const { message } of cases) expect(hellos.filter((x) => x.grpcMessage === message).length).toBeGreaterThan(0);
    expect(hellos.every((x) => x.grpcStatus === '16')).toBe(true);
    expect(p.relay.log.slice(from).filter((x) => x.call.endsWith('/Execute')).map((x) => x.grpcStatus)).toStrictEqual(['16', '16']);
    expect(await count()).toBe(before);
  });

  it('a read-only token ({a: "ro"}) syncs, but its write is refused (PERMISSION_DENIED) and nothing lands on the primary', async () => {
    const r = replica();
    await r.open(localFile('jwt-ro'), p.url, await token({ a: 'ro' }));
    expect((await r.sync()).frame_no).toBe(await primaryIndex(p.srv));
    const before = await count();
    expect(await r.all('SELECT count(*) AS n FROM t')).toStrictEqual([{ n: before }]);
    const from = p.relay.log.length;
    await expect(r.exec("INSERT INTO t (s) VALUES ('ro')")).rejects.toThrow(/WriteDelegation\(status: PermissionDenied/);
    expect(p.relay.log.slice(from).find((x) => x.call.endsWith('/Execute'))).toMatchObject({
      grpcStatus: '7',
      grpcMessage: "Authorization forbidden: Current session doesn't not have Write permission to namespace default",
    });
    expect(await count()).toBe(before);
    expect((await r.sync()).frames_synced).toBe(0);
  });

  it('@libsql/client with file: and syncUrl: sync(), a delegated write, and a sync that has it', async () => {
    const r = replica();
    await r.call('clientOpen', { config: { url: `file:${localFile('client')}`, syncUrl: p.url, authToken: await token(), intMode: 'number' } });
    expect((await r.call<SyncResult>('clientSync')).frame_no).toBe(await primaryIndex(p.srv));
    const SELECT = 'SELECT id, s FROM t ORDER BY id';
    expect(await r.call('clientExecute', { sql: SELECT })).toStrictEqual(plain(await admin.execute(SELECT)));
    await r.call('clientExecute', { sql: "INSERT INTO t (s) VALUES ('via @libsql/client')" });
    expect(plain(await admin.execute("SELECT count(*) AS n FROM t WHERE s = 'via @libsql/client'"))).toStrictEqual([{ n: 1 }]);
    await r.call('clientSync');
    expect(await r.call('clientExecute', { sql: SELECT })).toStrictEqual(plain(await admin.execute(SELECT)));
  });
});
