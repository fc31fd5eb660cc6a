/**
 * sqld's gRPC services on a real primary, called by hand with input no well-behaved replica sends
 * (spec §3.3, §6.5, §6.7; docs/REPLICATION.md): log calls without a session, forged session tokens and
 * principals, the wrong frame flavor, unknown namespaces, malformed bodies — over native gRPC on the
 * inter-node port (createGrpcChannel) and gRPC-web on the user port (fetch with hand-framed bodies).
 * After each kind of garbage the server still answers a normal Hello.
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createClient, type Client } from '@libsql/client';
import { SignJWT, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/engine/logger.js';
import { encodeDataFrame, GrpcWebDecoder } from '../../src/rpc/grpc-web/framing.js';
import { ErrorCode, WalFlavor, type ExecReq, type ExecResp, type LogOffset, type ProxyError, type WireFrame } from '../../src/rpc/messages.js';
import { proxy, replicationLog, type MethodRef } from '../../src/rpc/methods.js';
import { codecs } from '../../src/rpc/proto.js';
import { programToProxy } from '../../src/rpc/proxy/convert.js';
import { GrpcError, GrpcStatus } from '../../src/rpc/service.js';
import { createGrpcChannel, type GrpcChannel, type RequestMetadata } from '../../src/rpc/transport/grpc-client.js';
import { NODE_SECRET_HEADER } from '../../src/server/replication/primary-client.js';
import { startTestServer, tempDir, type TestServer } from '../helpers/test-server.js';

const logger = silentLogger();
const channels: GrpcChannel[] = [];
const clients: Client[] = [];
const servers: TestServer[] = [];

afterAll(async () => {
  for (const c of channels) c.close();
  for (const c of clients) c.close();
  for (const s of servers) await s.close();
});

async function server(flags: Parameters<typeof startTestServer>[0]): Promise<TestServer> {
  const s = await startTestServer({ 'grpc-listen-addr': '127.0.0.1:0', ...flags });
  servers.push(s);
  return s;
}

function channelTo(s: TestServer): GrpcChannel {
  const c = createGrpcChannel({ target: `http://127.0.0.1:${s.server.cluster.grpcAddress!.port}`, logger });
  channels.push(c);
  return c;
}

async function failure(p: Promise<unknown>): Promise<{ status: GrpcStatus; message: string }> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(GrpcError);
  return { status: (err as GrpcError).status, message: (err as GrpcError).message };
}

// ---- the two transports behind one interface ----

interface Transport {
  readonly name: string;
  unary<Req, Res>(m: MethodRef<Req, Res>, req: Req, md?: RequestMetadata): Promise<Res>;
  /** The first `n` messages of a server stream (fewer if it ends), then the call is dropped. */
  stream<Req, Res>(m: MethodRef<Req, Res>, req: Req, md: RequestMetadata, n: number): Promise<Res[]>;
}

function nativeTransport(channel: GrpcChannel): Transport {
  return {
    name: 'native gRPC (inter-node port)',
    unary: (m, req, md = {}) => channel.unary(m, req, md, { deadlineMs: 10_000 }),
    async stream(m, req, md, n) {
      const out = [];
      for await (const msg of channel.serverStream(m, req, md)) if (out.push(msg) >= n) break;
      return out;
    },
  };
}

const webHeaders = (md: RequestMetadata): Record<string, string> =>
  Object.fromEntries(Object.entries(md).map(([k, v]) => [k, typeof v === 'string' ? v : v.toString('base64').replace(/=+$/, '')]));

/** Posts a gRPC-web body; resolves with the decoded messages or rejects with the trailer's status. */
async function webCall(base: string, pathName: string, body: Buffer, headers: Record<string, string>, n = Infinity): Promise<Buffer[]> {
  const ac = new AbortController();
  const res = await fetch(base + pathName, { method: 'POST', body, headers: { 'content-type': 'application/grpc-web', ...headers }, signal: ac.signal });
  expect([res.status, res.headers.get('content-type')]).toStrictEqual([200, 'application/grpc-web+proto']);
  const dec = new GrpcWebDecoder();
  const out: Buffer[] = [];
  const reader = res.body!.getReader();
  try {
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      for (const f of dec.push(Buffer.from(r.value))) {
        if (f.kind === 'data') {
          if (out.push(f.payload) >= n) return out;
          continue;
        }
        const status = Number(f.trailers.get('grpc-status')) as GrpcStatus;
        if (status !== GrpcStatus.OK) throw new GrpcError(status, f.trailers.get('grpc-message') ?? '');
        return out;
      }
    }
  } finally {
    ac.abort(); // a stream that goes on (LogEntries) is dropped
    reader.releaseLock();
  }
  throw new Error(`${pathName}: the body ended without a trailer frame`);
}

function webTransport(base: string): Transport {
  return {
    name: 'gRPC-web (user port)',
    unary: async (m, req, md = {}) => m.response.decode((await webCall(base, m.path, encodeDataFrame(m.request.encode(req)), webHeaders(md)))[0]!),
    stream: async (m, req, md, n) => (await webCall(base, m.path, encodeDataFrame(m.request.encode(req)), webHeaders(md), n)).map((b) => m.response.decode(b)),
  };
}

const frameNo = (f: WireFrame): bigint => Buffer.from(f.data).readBigUInt64LE(0);
const NO_HELLO = { status: GrpcStatus.FAILED_PRECONDITION, message: 'NO_HELLO' };

// ---- ReplicationLog ----

describe('ReplicationLog on a primary with a compacted log', () => {
  let srv: TestServer;
  let transports: Transport[];
  let start: bigint;

  beforeAll(async () => {
    srv = await server({ 'max-log-size': 0.1 }); // 24 frames
    const c = createClient({ url: srv.url });
    clients.push(c);
    await c.execute('CREATE TABLE t (v BLOB)');
    for (let i = 0; i < 8; i++) await c.execute('INSERT INTO t VALUES (randomblob(8000))');
    const log = (await srv.server.context.namespaces.get('default')).frames!.log;
    await log.drain();
    start = log.startFrameNo;
    expect(start).toBeGreaterThan(0n);
    transports = [nativeTransport(channelTo(srv)), webTransport(srv.url)];
  });

  const calls = [
    { name: 'BatchLogEntries', run: (t: Transport, req: LogOffset, md: RequestMetadata) => t.unary(replicationLog.batchLogEntries, req, md) },
    { name: 'LogEntries', run: (t: Transport, req: LogOffset, md: RequestMetadata) => t.stream(replicationLog.logEntries, req, md, 1) },
    { name: 'Snapshot', run: (t: Transport, req: LogOffset, md: RequestMetadata) => t.stream(replicationLog.snapshot, req, md, 1) },
  ];

  it.each(calls)('$name without Hello, or with a forged session token, is FAILED_PRECONDITION NO_HELLO', async ({ run }) => {
    for (const t of transports) {
      expect(await failure(run(t, { nextOffset: start }, {})), t.name).toStrictEqual(NO_HELLO);
      expect(await failure(run(t, { nextOffset: start }, { 'x-session-token': randomUUID() })), t.name).toStrictEqual(NO_HELLO);
      expect(await failure(run(t, { nextOffset: start }, { 'x-session-token': '' })), t.name).toStrictEqual(NO_HELLO);
    }
  });

  it.each(calls)('$name with wal_flavor = Libsql is INVALID_ARGUMENT "libsql wal not supported"', async ({ run }) => {
    for (const t of transports) {
      const token = Buffer.from((await t.unary(replicationLog.hello, { handshakeVersion: 1n })).sessionToken).toString('ascii');
      const wanted = { status: GrpcStatus.INVALID_ARGUMENT, message: 'libsql wal not supported' };
      expect(await failure(run(t, { nextOffset: start, walFlavor: WalFlavor.Libsql }, { 'x-session-token': token })), t.name).toStrictEqual(wanted);
      expect(await failure(run(t, { nextOffset: start, walFlavor: WalFlavor.Libsql }, {})), t.name).toStrictEqual(wanted);
    }
  });

  it('after Hello, the session token opens every log call; offsets before the log start need a snapshot', async () => {
    for (const t of transports) {
      const hello = await t.unary(replicationLog.hello, { handshakeVersion: 1n });
      const token = Buffer.from(hello.sessionToken).toString('ascii');
      expect(token).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      // sqld's defaults for a namespace without a config of its own
      expect(hello.config, t.name).toMatchObject({ blockReads: false, blockWrites: false, maxDbPages: 244_140_625_000_000n, txnTimeoutS: 5n, maxRowSize: 5_000_000n, allowAttach: false });
      const md = { 'x-session-token': token };
      const batch = await t.unary(replicationLog.batchLogEntries, { nextOffset: start, walFlavor: WalFlavor.Sqlite }, md);
      expect(batch.frames.map(frameNo)[0], t.name).toBe(start);
      expect(frameNo(batch.frames.at(-1)!)).toBe(hello.currentReplicationIndex);
      expect((await t.stream(replicationLog.logEntries, { nextOffset: start }, md, 1)).map(frameNo)).toStrictEqual([start]);
      const snap = await t.stream(replicationLog.snapshot, { nextOffset: 0n }, md, 1);
      expect(snap).toHaveLength(1);
      expect(frameNo(snap[0]!)).toBeLessThan(start); // newest frame of the snapshot first
      // The whole snapshot: frames newest first, the database size on the last one only.
      const all = await t.stream(replicationLog.snapshot, { nextOffset: 0n }, md, Infinity);
      const numbers = all.map(frameNo);
      expect(numbers).toStrictEqual([...numbers].sort((a, b) => (a < b ? 1 : -1)));
      expect(numbers.every((n) => n < start)).toBe(true);
      const pages = all.map((f) => Buffer.from(f.data).readUInt32LE(16));
      expect(new Set(pages).size).toBe(pages.length); // the newest version of each page, once
      const sizes = all.map((f) => Buffer.from(f.data).readUInt32LE(20));
      expect(sizes.slice(0, -1).every((n) => n === 0)).toBe(true);
      expect(sizes.at(-1)).toBeGreaterThan(0);
      expect(await failure(t.unary(replicationLog.batchLogEntries, { nextOffset: 0n }, md))).toStrictEqual({ status: GrpcStatus.FAILED_PRECONDITION, message: 'NEED_SNAPSHOT' });
      expect(await failure(t.stream(replicationLog.snapshot, { nextOffset: hello.currentReplicationIndex! + 1n }, md, 1))).toStrictEqual({ status: GrpcStatus.UNAVAILABLE, message: 'snapshot not found' });
      // Nothing new past the end: an empty batch.
      expect(await t.unary(replicationLog.batchLogEntries, { nextOffset: hello.currentReplicationIndex! + 1n }, md)).toStrictEqual({ frames: [] });
    }
  });

  it('malformed bodies are INVALID_ARGUMENT (415 for a foreign content type); the server keeps serving', async () => {
    const web = (body: Buffer, headers: Record<string, string> = {}): Promise<unknown> => webCall(srv.url, replicationLog.hello.path, body, headers);
    const invalid = async (p: Promise<unknown>, message: RegExp): Promise<void> => {
      const f = await failure(p);
      expect(f.status).toBe(GrpcStatus.INVALID_ARGUMENT);
      expect(f.message).toMatch(message);
    };
    await invalid(web(encodeDataFrame(Buffer.from([0xff, 0xff, 0xff, 0x0f]))), /^invalid request message/);
    await invalid(web(Buffer.from(encodeDataFrame(codecs.HelloRequest.encode({ handshakeVersion: 1n })).subarray(0, 4))), /ends inside a frame/);
    await invalid(web(Buffer.from([0x00, 0x00, 0x00, 0x00, 0x09, 0x08])), /ends inside a frame/);
    await invalid(web(Buffer.alloc(0)), /exactly one request message/);
    await invalid(webCall(srv.url, replicationLog.batchLogEntries.path, encodeDataFrame(Buffer.from('garbage!')), {}), /^invalid request message/);
    const res = await fetch(srv.url + replicationLog.hello.path, { method: 'POST', body: encodeDataFrame(codecs.HelloRequest.encode({})), headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(415);
    await res.arrayBuffer();
    // The same garbage on the inter-node port.
    const native = channelTo(srv);
    const garbage = { ...replicationLog.batchLogEntries, request: { encode: () => Buffer.from([0xff, 0xff, 0xff, 0x0f]), decode: codecs.LogOffset.decode.bind(codecs.LogOffset) } };
    await invalid(native.unary(garbage, { nextOffset: 0n }, {}), /^invalid request message/);
    for (const t of [...transports, nativeTransport(native)]) expect((await t.unary(replicationLog.hello, { handshakeVersion: 1n })).logId, t.name).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('GET /info answers 404 (embedded replicas fall back to gRPC-web only then)', async () => {
    const res = await fetch(`${srv.url}/info`);
    expect(res.status).toBe(404);
    await res.arrayBuffer();
  });

  // Last: grpc-js channels to one address share their connection, so from here on every native call
  // of this file to this server comes from the legacy peer.
  it('a legacy Hello (no handshake_version) lets that peer, and only that peer, go on without a session token', async () => {
    const legacy = channelTo(srv);
    await legacy.unary(replicationLog.hello, {}, {});
    expect((await legacy.unary(replicationLog.batchLogEntries, { nextOffset: start }, {})).frames.length).toBeGreaterThan(0);
    expect(await failure(webTransport(srv.url).unary(replicationLog.batchLogEntries, { nextOffset: start }, {}))).toStrictEqual(NO_HELLO);
  });
});

describe('namespaces', () => {
  it('an unknown namespace is FAILED_PRECONDITION NAMESPACE_DOESNT_EXIST on both ports; bad namespace bytes INVALID_ARGUMENT', async () => {
    const srv = await server({ 'enable-namespaces': true });
    const native = channelTo(srv);
    const unknown = { 'x-namespace-bin': Buffer.from('no-such-db') };
    const missing = { status: GrpcStatus.FAILED_PRECONDITION, message: 'NAMESPACE_DOESNT_EXIST' };
    for (const t of [nativeTransport(native), webTransport(srv.url)]) {
      expect(await failure(t.unary(replicationLog.hello, { handshakeVersion: 1n }, unknown)), t.name).toStrictEqual(missing);
      expect(await failure(t.unary(replicationLog.batchLogEntries, { nextOffset: 0n }, unknown)), t.name).toStrictEqual(missing);
      expect(await failure(t.unary(proxy.execute, { clientId: randomUUID(), pgm: { steps: [] } }, { ...unknown, 'x-proxy-authorization': '"FullAccess"' })), t.name).toStrictEqual(missing);
      expect(await failure(t.unary(replicationLog.hello, {}, { 'x-namespace-bin': Buffer.from([0xc3, 0x28]) })), t.name).toStrictEqual({ status: GrpcStatus.INVALID_ARGUMENT, message: 'Invalid namespace bytes' });
    }
    const stream = native.bidi(proxy.streamExec, { ...unknown, 'x-proxy-authorization': '"FullAccess"' });
    stream.end();
    expect(await failure(collect(stream.responses))).toStrictEqual(missing);
  });
});

// ---- Proxy ----

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const program = (sql: string) => programToProxy([{ cond: null, sql, args: { positional: [], named: new Map() } }]);

/** One program over a new StreamExec stream: its whole-request error, step error, or `finish`. */
async function streamExec(channel: GrpcChannel, md: RequestMetadata, sql: string, requests?: ExecReq[]): Promise<{ error?: ProxyError; stepError?: ProxyError; finished: boolean }> {
  const call = channel.bidi(proxy.streamExec, md);
  for (const r of requests ?? [{ requestId: 1, request: { execute: { pgm: program(sql) } } }]) call.send(r);
  call.end();
  const answers: ExecResp[] = await collect(call.responses);
  const body = answers.map((a) => a.response);
  const error = body.find((b) => b !== undefined && 'error' in b);
  const steps = body.flatMap((b) => (b !== undefined && 'programResp' in b ? b.programResp.steps : []));
  const stepError = steps.find((s) => 'stepError' in s);
  return {
    ...(error && 'error' in error ? { error: error.error } : {}),
    ...(stepError && 'stepError' in stepError && stepError.stepError.error ? { stepError: stepError.stepError.error } : {}),
    finished: steps.some((s) => 'finish' in s),
  };
}

const { publicKey, privateKey } = generateKeyPairSync('ed25519');
const token = (claims: JWTPayload = {}): Promise<string> => new SignJWT(claims).setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' }).sign(privateKey);
const SECRET = 'node-secret-for-tests';
const FORBIDDEN = "Authorization forbidden: Current session doesn't not have Write permission to namespace default";

describe('Proxy on a JWT primary', () => {
  let srv: TestServer;
  let native: GrpcChannel;
  let admin: Client;
  let rw: string;
  let ro: string;
  const rows = async (): Promise<string[]> => (await admin.execute('SELECT who FROM w ORDER BY rowid')).rows.map((r) => r[0] as string);

  beforeAll(async () => {
    const dir = tempDir('libsqlctl-jwt-');
    try {
      const keyFile = path.join(dir, 'jwt.pem');
      fs.writeFileSync(keyFile, publicKey.export({ type: 'spki', format: 'pem' }).toString());
      srv = await server({ 'auth-jwt-key-file': keyFile, 'grpc-node-secret': SECRET });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    native = channelTo(srv);
    rw = await token();
    ro = await token({ a: 'ro' });
    admin = createClient({ url: srv.url, authToken: rw });
    clients.push(admin);
    await admin.execute('CREATE TABLE w (who TEXT)');
  });

  it('StreamExec or Execute without x-proxy-authorization is INVALID_ARGUMENT "x-proxy-authorization not set"', async () => {
    const notSet = { status: GrpcStatus.INVALID_ARGUMENT, message: 'x-proxy-authorization not set' };
    expect(await failure(streamExec(native, { authorization: `Bearer ${rw}` }, "INSERT INTO w VALUES ('no header')"))).toStrictEqual(notSet);
    expect(await failure(native.unary(proxy.execute, { clientId: randomUUID(), pgm: program("INSERT INTO w VALUES ('no header')") }, { [NODE_SECRET_HEADER]: SECRET }))).toStrictEqual(notSet);
    expect(await rows()).toStrictEqual([]);
  });

  it('a forged "FullAccess" from an unproven peer is not trusted: the forwarded authorization decides', async () => {
    const forged = { 'x-proxy-authorization': '"FullAccess"' };
    const invalid = { status: GrpcStatus.UNAUTHENTICATED, message: 'AuthError: The JWT is invalid' };
    expect(await failure(streamExec(native, { ...forged, authorization: 'Bearer not.a.jwt' }, "INSERT INTO w VALUES ('forged 1')"))).toStrictEqual(invalid);
    expect(await failure(streamExec(native, { ...forged, authorization: 'Bearer not.a.jwt', [NODE_SECRET_HEADER]: 'wrong secret' }, "INSERT INTO w VALUES ('forged 2')"))).toStrictEqual(invalid);
    const none = await failure(streamExec(native, { ...forged, [NODE_SECRET_HEADER]: `${SECRET}x` }, "INSERT INTO w VALUES ('forged 3')"));
    expect([GrpcStatus.UNAUTHENTICATED, GrpcStatus.INTERNAL]).toContain(none.status); // exact status: the spec test below
    expect(none.message).toMatch(/Expected authorization header but none given$/);
    // A valid read-only token: the stream opens, the write is refused as a whole request.
    expect(await streamExec(native, { ...forged, authorization: `Bearer ${ro}` }, "INSERT INTO w VALUES ('forged 4')")).toStrictEqual({ error: { code: ErrorCode.INTERNAL, message: FORBIDDEN, extendedCode: 0 }, finished: false });
    expect(await rows()).toStrictEqual([]);
    // A valid read-write token is accepted on its own merits.
    expect(await streamExec(native, { ...forged, authorization: `Bearer ${rw}` }, "INSERT INTO w VALUES ('validated token')")).toStrictEqual({ finished: true });
    expect(await rows()).toStrictEqual(['validated token']);
  });

  it('with the node secret the forwarded principal is trusted, as it says (full access, or read-only)', async () => {
    const trusted = { [NODE_SECRET_HEADER]: SECRET };
    expect(await streamExec(native, { ...trusted, 'x-proxy-authorization': '"FullAccess"' }, "INSERT INTO w VALUES ('trusted node')")).toStrictEqual({ finished: true });
    const readOnly = JSON.stringify({ Legacy: { namespace: null, perm: 'ro' } });
    expect((await streamExec(native, { ...trusted, 'x-proxy-authorization': readOnly, authorization: `Bearer ${rw}` }, "INSERT INTO w VALUES ('ro principal')")).error?.message).toBe(FORBIDDEN);
    expect(await failure(streamExec(native, { ...trusted, 'x-proxy-authorization': '{"Root":true}' }, 'SELECT 1'))).toStrictEqual({ status: GrpcStatus.INVALID_ARGUMENT, message: 'invalid x-proxy-authorization' });
    expect(await rows()).toStrictEqual(['validated token', 'trusted node']);
  });

  it('StreamExec refuses a request without body, an unconvertible program and decreasing request ids (INVALID_ARGUMENT)', async () => {
    const md = { [NODE_SECRET_HEADER]: SECRET, 'x-proxy-authorization': '"FullAccess"' };
    expect(await failure(streamExec(native, md, '', [{ requestId: 1 }]))).toStrictEqual({ status: GrpcStatus.INVALID_ARGUMENT, message: 'invalid request' });
    expect(await failure(streamExec(native, md, '', [{ requestId: 1, request: { execute: { pgm: { steps: [{}] } } } }]))).toStrictEqual({ status: GrpcStatus.INVALID_ARGUMENT, message: 'invalid program' });
    const ids = [5, 5].map((requestId): ExecReq => ({ requestId, request: { describe: { stmt: 'SELECT 1' } } }));
    expect(await failure(streamExec(native, md, '', ids))).toStrictEqual({ status: GrpcStatus.INVALID_ARGUMENT, message: 'received request with id less than last received request, closing stream' });
    const garbage = native.bidi({ ...proxy.streamExec, request: { encode: () => Buffer.from([0xff, 0xff, 0xff, 0x0f]), decode: codecs.ExecReq.decode.bind(codecs.ExecReq) } }, md);
    garbage.send({ requestId: 1 });
    expect((await failure(collect(garbage.responses))).status).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect((await nativeTransport(native).unary(replicationLog.hello, { handshakeVersion: 1n })).logId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('gRPC-web Proxy.Execute (the embedded replica write path) authenticates like HTTP; a read-only token may read, not write', async () => {
    const web = webTransport(srv.url);
    const exec = (sql: string, md: RequestMetadata): ReturnType<typeof web.unary<{ clientId: string }, unknown>> => web.unary(proxy.execute, { clientId: randomUUID(), pgm: program(sql) }, md);
    // The embedded replica sends `x-authorization: Bearer <token>`, with an empty token when it has none
    // (HTTP drops the trailing space: a malformed auth string).
    const malformed = { status: GrpcStatus.UNAUTHENTICATED, message: "AuthError: Auth string does not conform to '<scheme> <token>' form" };
    expect(await failure(exec("INSERT INTO w VALUES ('web empty')", { 'x-authorization': 'Bearer ' }))).toStrictEqual(malformed);
    // A forged principal means nothing on the user port.
    const none = await failure(exec("INSERT INTO w VALUES ('web none')", { 'x-proxy-authorization': '"FullAccess"', [NODE_SECRET_HEADER]: SECRET }));
    expect(none.message).toMatch(/Expected authorization header but none given$/);
    expect(await failure(exec("INSERT INTO w VALUES ('web ro')", { 'x-authorization': `Bearer ${ro}` }))).toStrictEqual({ status: GrpcStatus.PERMISSION_DENIED, message: FORBIDDEN });
    expect(await failure(web.unary(replicationLog.hello, {}, { 'x-authorization': 'Bearer not.a.jwt' }))).toStrictEqual({ status: GrpcStatus.UNAUTHENTICATED, message: 'AuthError: The JWT is invalid' });
    expect(await rows()).toStrictEqual(['validated token', 'trusted node']);
    const read = await web.unary(proxy.execute, { clientId: randomUUID(), pgm: program('SELECT count(*) FROM w') }, { 'x-authorization': `Bearer ${ro}` });
    expect(read.results).toHaveLength(1);
    expect('row' in read.results[0]! && read.results[0].row.rows).toHaveLength(1);
    expect(await failure(web.unary(proxy.execute, { clientId: 'not-a-uuid', pgm: program('SELECT 1') }, { 'x-authorization': `Bearer ${rw}` }))).toStrictEqual({ status: GrpcStatus.INVALID_ARGUMENT, message: 'invalid client id: not-a-uuid' });
    expect(await failure(web.unary(proxy.execute, { clientId: randomUUID() }, { 'x-authorization': `Bearer ${rw}` }))).toStrictEqual({ status: GrpcStatus.INVALID_ARGUMENT, message: 'invalid program' });
    const bidi = await failure(webCall(srv.url, proxy.streamExec.path, encodeDataFrame(codecs.ExecReq.encode({ requestId: 1 })), { 'x-authorization': `Bearer ${rw}` }));
    expect(bidi.status).toBe(GrpcStatus.UNIMPLEMENTED);
    const ok = await web.unary(proxy.execute, { clientId: randomUUID(), pgm: program("INSERT INTO w VALUES ('web rw')") }, { 'x-authorization': `Bearer ${rw}` });
    expect(ok.currentFrameNo).toBe((await srv.server.context.namespaces.get('default')).replicationIndex());
    expect(await rows()).toStrictEqual(['validated token', 'trusted node', 'web rw']);
  });

  it('ReplicationLog on the inter-node port is open, unless the call says libsql-proxied: then it authenticates', async () => {
    const t = nativeTransport(native);
    expect((await t.unary(replicationLog.hello, { handshakeVersion: 1n }, {})).logId).toMatch(/^[0-9a-f-]{36}$/);
    const proxied = { 'libsql-proxied': 'true' };
    expect(await failure(t.unary(replicationLog.hello, { handshakeVersion: 1n }, { ...proxied, authorization: 'Bearer not.a.jwt' }))).toStrictEqual({ status: GrpcStatus.UNAUTHENTICATED, message: 'AuthError: The JWT is invalid' });
    expect((await t.unary(replicationLog.hello, { handshakeVersion: 1n }, { ...proxied, 'x-authorization': `Bearer ${ro}` })).logId).toMatch(/^[0-9a-f-]{36}$/);
    // A token of no namespace's reader: PERMISSION_DENIED.
    const other = await token({ p: { ro: { ns: ['elsewhere'] } } });
    expect(await failure(t.unary(replicationLog.hello, { handshakeVersion: 1n }, { ...proxied, authorization: `Bearer ${other}` }))).toStrictEqual({
      status: GrpcStatus.PERMISSION_DENIED,
      message: "Authorization forbidden: Current session doesn't have Read permission to namespace default",
    });
  });

  it('missing credentials on a gRPC call are INTERNAL "Error parsing auth header: …" (spec §3.3, §6.5)', async () => {
    const wanted = { status: GrpcStatus.INTERNAL, message: 'Error parsing auth header: Expected authorization header but none given' };
    expect(await failure(webTransport(srv.url).unary(replicationLog.hello, { handshakeVersion: 1n }, {}))).toStrictEqual(wanted);
    expect(await failure(nativeTransport(native).unary(replicationLog.hello, { handshakeVersion: 1n }, { 'libsql-proxied': 'true' }))).toStrictEqual(wanted);
  });
});
