import { requireOpenssl } from '../helpers/openssl.js';
import { rejectionOf } from '../helpers/rejection.js';
import { execFileSync } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExecReq, ExecResp, Frames, LogOffset, WireFrame } from '../../src/rpc/messages.js';
import { WalFlavor } from '../../src/rpc/messages.js';
import { codecs, type MessageCodec } from '../../src/rpc/proto.js';
import { GrpcError, GrpcStatus, type CallContext, type ServiceDef } from '../../src/rpc/service.js';
import { encodeDataFrame, GrpcWebDecoder, type GrpcWebFrame } from '../../src/rpc/grpc-web/framing.js';
import { registerGrpcWeb } from '../../src/rpc/grpc-web/routes.js';
import { createGrpcChannel, type GrpcChannel } from '../../src/rpc/transport/grpc-client.js';
import { startGrpcServer, type GrpcServerHandle } from '../../src/rpc/transport/grpc-server.js';

// ---- a toy service over the real codecs ----

const events = new EventEmitter();
const seen: CallContext[] = [];
const logLines: string[] = [];
const logger = pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) });
let gate: Promise<void> = Promise.resolve();
let openGate: () => void = () => undefined;

function resetGate(): void {
  gate = new Promise((resolve) => (openGate = resolve));
}

const frame = (i: number): WireFrame => ({ data: Buffer.from([i]), timestamp: BigInt(-i) });
const untilAborted = (signal: AbortSignal): Promise<void> => new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));

const toy: ServiceDef = {
  name: 'toy.Toy',
  methods: [
    {
      kind: 'unary',
      path: '/toy.Toy/Echo',
      request: codecs.LogOffset,
      response: codecs.LogOffset,
      handler: async (req: LogOffset, ctx) => {
        seen.push(ctx);
        if (req.nextOffset === 404n) throw new GrpcError(GrpcStatus.NOT_FOUND, 'no such offset: ünïcode 100%');
        if (req.nextOffset === 500n) throw new Error('kaboom');
        if (req.nextOffset === 408n) {
          events.emit('unary-waiting');
          await untilAborted(ctx.signal);
          events.emit('unary-aborted', ctx.signal.reason);
        }
        return { nextOffset: req.nextOffset + 1n, ...(req.walFlavor !== undefined ? { walFlavor: req.walFlavor } : {}) };
      },
    },
    {
      kind: 'unary',
      path: '/toy.Toy/Batch',
      request: codecs.LogOffset,
      response: codecs.Frames,
      handler: (req: LogOffset) => Promise.resolve<Frames>({ frames: Array.from({ length: Number(req.nextOffset) }, (_, i) => ({ data: Buffer.alloc(4120, i & 0xff) })) }),
    },
    {
      kind: 'server-stream',
      path: '/toy.Toy/Count',
      request: codecs.LogOffset,
      response: codecs.Frame,
      // next_offset frames, then: Libsql → end; Sqlite → NEED_SNAPSHOT; absent → wait until cancelled.
      handler: async function* (req: LogOffset, ctx) {
        seen.push(ctx);
        try {
          for (let i = 0; i < Number(req.nextOffset); i++) yield frame(i);
          if (req.walFlavor === WalFlavor.Libsql) return;
          if (req.walFlavor === WalFlavor.Sqlite) throw new GrpcError(GrpcStatus.FAILED_PRECONDITION, 'NEED_SNAPSHOT');
          await untilAborted(ctx.signal);
        } finally {
          events.emit('count-finally', ctx.signal.reason);
        }
      },
    },
    {
      kind: 'server-stream',
      path: '/toy.Toy/Gated',
      request: codecs.LogOffset,
      response: codecs.Frame,
      handler: async function* () {
        yield frame(1);
        await gate;
        yield frame(2);
      },
    },
    {
      kind: 'bidi',
      path: '/toy.Toy/Chat',
      request: codecs.ExecReq,
      response: codecs.ExecResp,
      handler: async function* (requests: AsyncIterable<ExecReq>) {
        for await (const req of requests) yield { requestId: req.requestId * 10, ...(req.request && 'describe' in req.request ? { response: { error: { code: 0, message: req.request.describe.stmt, extendedCode: 0 } } } : {}) } satisfies ExecResp;
      },
    },
  ],
};

const method = <Req, Res>(p: string, request: MessageCodec<Req>, response: MessageCodec<Res>) => ({ path: p, request, response });
const echo = method('/toy.Toy/Echo', codecs.LogOffset, codecs.LogOffset);
const batch = method('/toy.Toy/Batch', codecs.LogOffset, codecs.Frames);
const count = method('/toy.Toy/Count', codecs.LogOffset, codecs.Frame);
const chat = method('/toy.Toy/Chat', codecs.ExecReq, codecs.ExecResp);
/** Sends bytes that are not a LogOffset (wire type 7). */
const garbage: MessageCodec<LogOffset> = { encode: () => Buffer.from([0x0f]), decode: codecs.LogOffset.decode.bind(codecs.LogOffset) };

async function take<T>(it: AsyncIterable<T>, n: number): Promise<{ got: T[]; iterator: AsyncIterator<T> }> {
  const iterator = it[Symbol.asyncIterator]();
  const got: T[] = [];
  while (got.length < n) {
    const r = await iterator.next();
    if (r.done) break;
    got.push(r.value);
  }
  return { got, iterator };
}

const rejection = (p: Promise<unknown>): Promise<GrpcError> => rejectionOf(p, GrpcError);

describe('grpc-js transport (h2c)', () => {
  let server: GrpcServerHandle;
  let channel: GrpcChannel;

  beforeAll(async () => {
    server = await startGrpcServer({ host: '127.0.0.1', port: 0, services: [toy], logger });
    channel = createGrpcChannel({ target: `http://127.0.0.1:${server.address.port}`, logger });
  });
  afterAll(async () => {
    channel?.close();
    await server?.close(100);
  });

  it('calls a unary method with ASCII and binary metadata', async () => {
    seen.length = 0;
    const res = await channel.unary(echo, { nextOffset: 2n ** 64n - 2n, walFlavor: WalFlavor.Sqlite }, { 'x-namespace-bin': Buffer.from('ns1'), 'x-session-token': 'tok' });
    expect(res).toStrictEqual({ nextOffset: 2n ** 64n - 1n, walFlavor: WalFlavor.Sqlite });
    const ctx = seen[0]!;
    expect([ctx.transport, ctx.trustedPeer, ctx.metadata.get('x-session-token'), ctx.metadata.getBinary('x-namespace-bin')?.toString()]).toStrictEqual(['inter-node', false, 'tok', 'ns1']);
    expect(ctx.peer).toContain('127.0.0.1');
  });

  it('reports handler errors with their status and message; unexpected ones are INTERNAL and logged', async () => {
    const notFound = await rejection(channel.unary(echo, { nextOffset: 404n }, {}));
    expect([notFound.status, notFound.message]).toStrictEqual([GrpcStatus.NOT_FOUND, 'no such offset: ünïcode 100%']);
    logLines.length = 0;
    const internal = await rejection(channel.unary(echo, { nextOffset: 500n }, {}));
    expect([internal.status, internal.message]).toStrictEqual([GrpcStatus.INTERNAL, 'kaboom']);
    expect(logLines.some((l) => l.includes('"level":50') && l.includes('kaboom'))).toBe(true);
  });

  it('answers INVALID_ARGUMENT to a request that does not decode', async () => {
    const err = await rejection(channel.unary({ ...echo, request: garbage }, { nextOffset: 1n }, {}));
    expect(err.status).toBe(GrpcStatus.INVALID_ARGUMENT);
    expect(err.message).toMatch(/invalid request message/);
  });

  it('carries messages above 4 MiB both ways', async () => {
    const res = await channel.unary(batch, { nextOffset: 1100n }, {});
    expect(res.frames).toHaveLength(1100);
    expect(res.frames[1099]!.data[0]).toBe(1099 & 0xff);
  });

  it('aborts a unary call by signal and by deadline; the handler sees its signal abort', async () => {
    const ac = new AbortController();
    const waiting = once(events, 'unary-waiting');
    const aborted = once(events, 'unary-aborted');
    const call = channel.unary(echo, { nextOffset: 408n }, {}, { signal: ac.signal });
    await waiting;
    ac.abort(new Error('replica stopping'));
    await expect(call).rejects.toThrow('replica stopping');
    const [reason] = (await aborted) as [GrpcError];
    expect(reason.status).toBe(GrpcStatus.CANCELLED);
    const deadline = once(events, 'unary-aborted');
    const err = await rejection(channel.unary(echo, { nextOffset: 408n }, {}, { deadlineMs: 300 }));
    expect(err.status).toBe(GrpcStatus.DEADLINE_EXCEEDED);
    await deadline;
  });

  it('streams messages and ends with OK or with the handler error', async () => {
    const all: WireFrame[] = [];
    for await (const f of channel.serverStream(count, { nextOffset: 3n, walFlavor: WalFlavor.Libsql }, {})) all.push(f);
    expect(all.map((f) => [f.data[0], f.timestamp])).toStrictEqual([[0, -0n], [1, -1n], [2, -2n]]);
    const { got, iterator } = await take(channel.serverStream(count, { nextOffset: 1n, walFlavor: WalFlavor.Sqlite }, {}), 1);
    expect(got).toHaveLength(1);
    const err = await rejection(iterator.next());
    expect([err.status, err.message]).toStrictEqual([GrpcStatus.FAILED_PRECONDITION, 'NEED_SNAPSHOT']);
  });

  it('stops the server handler when the client aborts or leaves the loop', async () => {
    const ac = new AbortController();
    const { got, iterator } = await take(channel.serverStream(count, { nextOffset: 2n }, {}, { signal: ac.signal }), 2);
    expect(got).toHaveLength(2);
    const stopped = once(events, 'count-finally');
    ac.abort(new Error('bye'));
    await expect(iterator.next()).rejects.toThrow('bye');
    const [reason] = (await stopped) as [GrpcError];
    expect(reason.status).toBe(GrpcStatus.CANCELLED);
    const stopped2 = once(events, 'count-finally');
    for await (const f of channel.serverStream(count, { nextOffset: 5n }, {})) if (f.data[0] === 1) break;
    await stopped2;
  });

  it('runs a bidi stream, and fails it with INVALID_ARGUMENT on a request that does not decode', async () => {
    const call = channel.bidi(chat, {});
    call.send({ requestId: 1, request: { describe: { stmt: 'SELECT 1' } } });
    const { got, iterator } = await take(call.responses, 1);
    expect(got).toStrictEqual([{ requestId: 10, response: { error: { code: 0, message: 'SELECT 1', extendedCode: 0 } } }]);
    call.send({ requestId: 2 });
    call.send({ requestId: 3 });
    call.end();
    const rest: ExecResp[] = [];
    for (let r = await iterator.next(); !r.done; r = await iterator.next()) rest.push(r.value);
    expect(rest).toStrictEqual([{ requestId: 20 }, { requestId: 30 }]);
    const bad = channel.bidi({ ...chat, request: { encode: () => Buffer.from([0x0f]), decode: codecs.ExecReq.decode.bind(codecs.ExecReq) } }, {});
    bad.send({ requestId: 1 });
    const err = await rejection(take(bad.responses, 1));
    expect(err.status).toBe(GrpcStatus.INVALID_ARGUMENT);
  });

  it('refuses to listen on a port in use, naming the address', async () => {
    await expect(startGrpcServer({ host: '127.0.0.1', port: server.address.port, services: [toy], logger })).rejects.toThrow(`127.0.0.1:${server.address.port}`);
  });

  it('close() ends a never-ending stream', async () => {
    const other = await startGrpcServer({ host: '127.0.0.1', port: 0, services: [toy], logger });
    const client = createGrpcChannel({ target: `http://127.0.0.1:${other.address.port}`, logger });
    try {
      const { got, iterator } = await take(client.serverStream(count, { nextOffset: 1n }, {}), 1);
      expect(got).toHaveLength(1);
      const stopped = once(events, 'count-finally');
      const closed = other.close(5000);
      const err = await rejection(iterator.next());
      expect(err.status).toBe(GrpcStatus.UNAVAILABLE);
      await stopped;
      await closed;
    } finally {
      client.close();
    }
  });
});

// ---- mutual TLS with certificates made by the openssl CLI ----


describe('grpc-js transport (mTLS)', () => {
  let dir: string;
  let server: GrpcServerHandle;
  const pem: Record<string, Buffer> = {};
  const verified: boolean[] = [];

  beforeAll(async () => {
    requireOpenssl();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'libsqlctl-mtls-'));
    const ssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
    ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=test-ca', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
    for (const [name, usage, serial] of [['server', 'serverAuth', '1'], ['client', 'clientAuth', '2']] as const) {
      fs.writeFileSync(path.join(dir, `${name}.ext`), `subjectAltName=DNS:sqld\nextendedKeyUsage=${usage}\n`);
      ssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
      ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', serial, '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.pem`);
    }
    for (const f of ['ca.pem', 'server.pem', 'server.key', 'client.pem', 'client.key']) pem[f] = fs.readFileSync(path.join(dir, f));
    server = await startGrpcServer({
      host: '127.0.0.1',
      port: 0,
      services: [toy],
      logger,
      tls: { cert: pem['server.pem']!, key: pem['server.key']!, ca: pem['ca.pem']! },
      trustedPeer: (_meta, clientCertVerified) => {
        verified.push(clientCertVerified);
        return clientCertVerified;
      },
    });
  });
  afterAll(async () => {
    await server?.close(100);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('accepts a client with a certificate from the CA, verifying the server as `sqld`', async () => {
    const channel = createGrpcChannel({ target: `https://127.0.0.1:${server.address.port}`, tls: { ca: pem['ca.pem']!, cert: pem['client.pem']!, key: pem['client.key']! }, logger });
    try {
      seen.length = 0;
      expect(await channel.unary(echo, { nextOffset: 1n }, {})).toStrictEqual({ nextOffset: 2n });
      expect(verified.at(-1)).toBe(true);
      expect(seen[0]!.trustedPeer).toBe(true);
    } finally {
      channel.close();
    }
  });

  it('refuses a client without a certificate', async () => {
    const channel = createGrpcChannel({ target: `https://127.0.0.1:${server.address.port}`, tls: { ca: pem['ca.pem']! }, logger });
    try {
      const err = await rejection(channel.unary(echo, { nextOffset: 1n }, {}, { deadlineMs: 5000 }));
      expect(err.status).toBe(GrpcStatus.UNAVAILABLE);
    } finally {
      channel.close();
    }
  });
});

// ---- gRPC-web on a fastify app like the user port's ----

describe('gRPC-web routes', () => {
  let app: FastifyInstance;
  let base: string;

  async function startApp(): Promise<{ app: FastifyInstance; base: string }> {
    const a = Fastify();
    a.removeAllContentTypeParsers();
    a.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
    // Like the user port's CORS hook: headers set before the handler reach streamed answers too.
    a.addHook('onRequest', (_req, reply, done) => {
      void reply.header('access-control-allow-origin', '*');
      done();
    });
    registerGrpcWeb(a, [toy], { logger, trustedPeer: (meta) => meta.get('x-trust') === 'yes' });
    await a.listen({ host: '127.0.0.1', port: 0 });
    const addr = a.server.address();
    return { app: a, base: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}` };
  }

  beforeAll(async () => ({ app, base } = await startApp()));
  afterAll(async () => app?.close());

  const post = (p: string, body: Buffer | string, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> =>
    fetch(base + p, { method: 'POST', body, headers: { 'content-type': 'application/grpc-web', ...headers }, ...(signal ? { signal } : {}) });
  const request = (msg: LogOffset): Buffer => encodeDataFrame(codecs.LogOffset.encode(msg));

  async function frames(res: Response, text = false): Promise<GrpcWebFrame[]> {
    const dec = new GrpcWebDecoder({ text });
    const out = dec.push(Buffer.from(await res.arrayBuffer()));
    dec.end();
    return out;
  }

  function trailer(fs: GrpcWebFrame[]): Record<string, string> {
    const last = fs.at(-1);
    expect(last?.kind).toBe('trailer');
    return last?.kind === 'trailer' ? Object.fromEntries(last.trailers) : {};
  }

  /** Reads frames as they arrive: next() gives the next frame, or null at the end of the body. */
  function incremental(res: Response): { next(): Promise<GrpcWebFrame | null> } {
    const dec = new GrpcWebDecoder();
    const body = (res.body as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
    const ready: GrpcWebFrame[] = [];
    return {
      async next() {
        while (ready.length === 0) {
          const r = await body.next();
          if (r.done) return null;
          ready.push(...dec.push(Buffer.from(r.value)));
        }
        return ready.shift() ?? null;
      },
    };
  }

  it('answers a unary call with a data frame and an OK trailer; metadata comes from headers', async () => {
    seen.length = 0;
    const res = await post('/toy.Toy/Echo', request({ nextOffset: 41n }), { 'x-namespace-bin': 'MTI3', 'x-trust': 'yes', 'x-authorization': 'Bearer t' });
    expect([res.status, res.headers.get('content-type')]).toStrictEqual([200, 'application/grpc-web+proto']);
    const fs = await frames(res);
    expect(fs[0]?.kind === 'data' && codecs.LogOffset.decode(fs[0].payload)).toStrictEqual({ nextOffset: 42n });
    expect(trailer(fs)).toStrictEqual({ 'grpc-status': '0' });
    const ctx = seen[0]!;
    expect([ctx.transport, ctx.trustedPeer, ctx.metadata.getBinary('x-namespace-bin')?.toString(), ctx.metadata.get('x-authorization'), ctx.metadata.getBinary('x-authorization')]).toStrictEqual(['user', true, '127', 'Bearer t', undefined]);
  });

  it('puts handler errors in the trailer; unexpected ones are logged', async () => {
    expect(trailer(await frames(await post('/toy.Toy/Echo', request({ nextOffset: 404n }))))).toStrictEqual({ 'grpc-status': '5', 'grpc-message': 'no such offset: ünïcode 100%' });
    logLines.length = 0;
    expect(trailer(await frames(await post('/toy.Toy/Echo', request({ nextOffset: 500n }))))).toStrictEqual({ 'grpc-status': '13', 'grpc-message': 'kaboom' });
    expect(logLines.some((l) => l.includes('"level":50') && l.includes('kaboom'))).toBe(true);
  });

  it.each([
    ['no frame', Buffer.alloc(0), /exactly one request message/],
    ['two frames', Buffer.concat([request({ nextOffset: 1n }), request({ nextOffset: 2n })]), /exactly one request message/],
    ['a truncated frame', request({ nextOffset: 300n }).subarray(0, 6), /ends inside a frame/],
    ['a message that does not decode', encodeDataFrame(Buffer.from([0x0f])), /invalid request message/],
    ['a compressed frame', Buffer.from('0100000000', 'hex'), /compressed/],
  ])('answers INVALID_ARGUMENT to %s', async (_what, body, message) => {
    const t = trailer(await frames(await post('/toy.Toy/Echo', body)));
    expect(t['grpc-status']).toBe('3');
    expect(t['grpc-message']).toMatch(message);
  });

  it('answers 415 to a content type that is not gRPC-web', async () => {
    for (const ct of ['application/json', 'application/grpc']) {
      const res = await post('/toy.Toy/Echo', request({ nextOffset: 1n }), { 'content-type': ct });
      expect(res.status).toBe(415);
      expect(await res.text()).toMatch(/unsupported content type .*application\/grpc-web/);
    }
  });

  it('speaks gRPC-web-text (unary, and a stream of separately encoded chunks)', async () => {
    const res = await post('/toy.Toy/Echo', request({ nextOffset: 7n }).toString('base64'), { 'content-type': 'application/grpc-web-text' });
    expect(res.headers.get('content-type')).toBe('application/grpc-web-text+proto');
    const fs = await frames(res, true);
    expect(fs[0]?.kind === 'data' && codecs.LogOffset.decode(fs[0].payload)).toStrictEqual({ nextOffset: 8n });
    const stream = await post('/toy.Toy/Count', request({ nextOffset: 3n, walFlavor: WalFlavor.Libsql }).toString('base64'), { 'content-type': 'application/grpc-web-text+proto' });
    const sfs = await frames(stream, true);
    expect(sfs.map((f) => (f.kind === 'data' ? codecs.Frame.decode(f.payload).data[0] : 'trailer'))).toStrictEqual([0, 1, 2, 'trailer']);
    expect(trailer(sfs)['grpc-status']).toBe('0');
  });

  it('streams messages as they are yielded', async () => {
    resetGate();
    const res = await post('/toy.Toy/Gated', request({ nextOffset: 0n }));
    expect([res.headers.get('content-type'), res.headers.get('access-control-allow-origin')]).toStrictEqual(['application/grpc-web+proto', '*']);
    const it = incremental(res);
    const first = await it.next();
    expect(first?.kind === 'data' && codecs.Frame.decode(first.payload).data[0]).toBe(1);
    openGate(); // the second message exists only once the first one has arrived
    const second = await it.next();
    expect(second?.kind === 'data' && codecs.Frame.decode(second.payload).data[0]).toBe(2);
    const last = await it.next();
    expect(last?.kind === 'trailer' && last.trailers.get('grpc-status')).toBe('0');
    expect(await it.next()).toBeNull();
  });

  it('ends a stream with the handler error in the trailer', async () => {
    const fs = await frames(await post('/toy.Toy/Count', request({ nextOffset: 2n, walFlavor: WalFlavor.Sqlite })));
    expect(fs.filter((f) => f.kind === 'data')).toHaveLength(2);
    expect(trailer(fs)).toStrictEqual({ 'grpc-status': '9', 'grpc-message': 'NEED_SNAPSHOT' });
  });

  it('stops the stream handler when the client disconnects', async () => {
    const ac = new AbortController();
    const res = await post('/toy.Toy/Count', request({ nextOffset: 1n }), {}, ac.signal);
    const first = await incremental(res).next();
    expect(first?.kind).toBe('data');
    const stopped = once(events, 'count-finally');
    ac.abort();
    const [reason] = (await stopped) as [GrpcError];
    expect(reason.status).toBe(GrpcStatus.CANCELLED);
  });

  it('answers UNIMPLEMENTED to a bidi method', async () => {
    const t = trailer(await frames(await post('/toy.Toy/Chat', encodeDataFrame(codecs.ExecReq.encode({ requestId: 1 })))));
    expect(t['grpc-status']).toBe('12');
    expect(t['grpc-message']).toMatch(/inter-node/);
  });

  it('ends live streams with UNAVAILABLE when the app closes', async () => {
    const own = await startApp();
    const res = await fetch(`${own.base}/toy.Toy/Count`, { method: 'POST', body: request({ nextOffset: 1n }), headers: { 'content-type': 'application/grpc-web+proto' } });
    const it = incremental(res);
    expect((await it.next())?.kind).toBe('data');
    const closed = own.app.close();
    const end = await it.next();
    expect(end?.kind === 'trailer' && Object.fromEntries(end.trailers)).toStrictEqual({ 'grpc-status': '14', 'grpc-message': 'server is shutting down' });
    await closed;
  });
});
