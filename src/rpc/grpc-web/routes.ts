/**
 * gRPC-web on the user port (spec sqld-wire.md §6.1; design.md §2, §7): every unary and
 * server-streaming method of the services becomes `POST <method path>` on the fastify app. Requests
 * arrive as one raw Buffer (the app's '*' content-type parser) holding exactly one data frame; answers
 * are HTTP 200 with data frames and a trailer frame carrying grpc-status (and grpc-message). Bidi
 * methods need the inter-node port (native gRPC over HTTP/2).
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errorMessage, type Logger } from '../../engine/logger.js';
import { ProtoDecodeError } from '../proto.js';
import { GrpcError, GrpcStatus, toGrpcError, type AnyMethod, type CallContext, type CallMetadata, type ServiceDef } from '../service.js';
import { DEFAULT_MAX_FRAME_BYTES, encodeTrailerFrame, frameHeader, FLAG_DATA, GrpcWebDecoder, GrpcWebFramingError, parseGrpcWebContentType } from './framing.js';

export interface GrpcWebOptions {
  logger: Logger;
  /** Largest request message accepted (16 MiB by default). */
  maxMessageBytes?: number;
  /** Whether a call's metadata proves it comes from another node of the cluster (never, by default). */
  trustedPeer?: (meta: CallMetadata) => boolean;
  /**
   * Runs on the request's headers before its body is read (throws GrpcError): an unauthenticated
   * caller is answered while it may still be sending, and its body is never buffered.
   */
  preAuthorize?: (meta: CallMetadata) => Promise<void>;
}

const BINARY_RESPONSE_TYPE = 'application/grpc-web+proto';
const TEXT_RESPONSE_TYPE = 'application/grpc-web-text+proto';

const UNSUPPORTED_TYPE =
  'gRPC-web methods take content type application/grpc-web, application/grpc-web+proto, application/grpc-web-text or application/grpc-web-text+proto; native gRPC is served on the inter-node port (--grpc-listen-addr)';

function firstHeader(headers: IncomingHttpHeaders, key: string): string | undefined {
  const v = headers[key.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** Request headers as call metadata; `-bin` values are base64 (padded or not), the first of a list. */
export function headerMetadata(headers: IncomingHttpHeaders): CallMetadata {
  return {
    get: (key) => firstHeader(headers, key),
    getBinary: (key) => {
      if (!key.toLowerCase().endsWith('-bin')) return undefined;
      const v = firstHeader(headers, key);
      if (v === undefined) return undefined;
      return Buffer.from(v.split(',', 1)[0]!.trim(), 'base64');
    },
  };
}

function peerOf(request: FastifyRequest): string {
  const { remoteAddress, remotePort } = request.socket;
  return remoteAddress === undefined ? 'unknown' : `${remoteAddress}:${remotePort ?? 0}`;
}

/** Reads the one request message of a unary or server-streaming call. */
function readRequest<Req>(method: AnyMethod, body: unknown, text: boolean, maxFrameBytes: number): Req {
  const raw = Buffer.isBuffer(body) ? body : Buffer.alloc(0);
  const decoder = new GrpcWebDecoder({ maxFrameBytes, text });
  let frames;
  try {
    frames = decoder.push(raw);
    decoder.end();
  } catch (err) {
    if (err instanceof GrpcWebFramingError) throw new GrpcError(err.oversize ? GrpcStatus.RESOURCE_EXHAUSTED : GrpcStatus.INVALID_ARGUMENT, err.message);
    throw err;
  }
  const first = frames[0];
  if (frames.length !== 1 || first?.kind !== 'data') {
    throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, `expected exactly one request message frame, got ${frames.length} frames`);
  }
  try {
    return method.request.decode(first.payload) as Req;
  } catch (err) {
    if (err instanceof ProtoDecodeError) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, `invalid request message: ${err.message}`);
    throw err;
  }
}

interface Call {
  readonly method: AnyMethod;
  readonly request: FastifyRequest;
  readonly reply: FastifyReply;
  readonly text: boolean;
  readonly ctx: CallContext;
  readonly abort: AbortController;
}

class Transport {
  private readonly maxFrameBytes: number;
  /** Live streaming calls, ended with UNAVAILABLE when the app closes. */
  private readonly live = new Set<AbortController>();
  private closing = false;

  constructor(private readonly opts: GrpcWebOptions) {
    this.maxFrameBytes = opts.maxMessageBytes ?? DEFAULT_MAX_FRAME_BYTES;
  }

  shutdown(): void {
    this.closing = true;
    for (const abort of this.live) abort.abort(new GrpcError(GrpcStatus.UNAVAILABLE, 'server is shutting down'));
  }

  /** A handler's failure as the status the client sees; unexpected ones are logged. */
  private failure(method: AnyMethod, err: unknown): GrpcError {
    const status = toGrpcError(err);
    if (!(err instanceof GrpcError)) this.opts.logger.error({ err, method: method.path }, `gRPC-web ${method.path} failed: ${errorMessage(err)}`);
    return status;
  }

  /** Before the body: a wrong content type (415) or a refused caller (a trailers-only answer) ends the request here. */
  async preflight(method: AnyMethod, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    const type = parseGrpcWebContentType(request.headers['content-type']);
    const refuse = (): void => {
      if (request.headers['content-length'] !== '0') void reply.header('connection', 'close');
    };
    if (!type) {
      refuse();
      const got = request.headers['content-type'] ?? 'none';
      return reply.code(415).header('content-type', 'text/plain; charset=utf-8').send(`unsupported content type ${got}: ${UNSUPPORTED_TYPE}`);
    }
    if (!this.opts.preAuthorize) return undefined;
    try {
      await this.opts.preAuthorize(headerMetadata(request.headers));
      return undefined;
    } catch (err) {
      refuse();
      const status = this.failure(method, err);
      this.opts.logger.debug({ method: method.path, status: status.status }, `gRPC-web call refused before its body was read: ${status.message}`);
      const body = encodeTrailerFrame(status.status, status.message);
      return reply
        .code(200)
        .header('content-type', type.text ? TEXT_RESPONSE_TYPE : BINARY_RESPONSE_TYPE)
        .send(type.text ? Buffer.from(body.toString('base64'), 'latin1') : body);
    }
  }

  async handle(method: AnyMethod, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const type = parseGrpcWebContentType(request.headers['content-type']);
    if (!type) {
      const got = request.headers['content-type'] ?? 'none';
      return reply.code(415).header('content-type', 'text/plain; charset=utf-8').send(`unsupported content type ${got}: ${UNSUPPORTED_TYPE}`);
    }
    const abort = new AbortController();
    const raw = reply.raw;
    raw.once('close', () => {
      if (!raw.writableFinished) abort.abort(new GrpcError(GrpcStatus.CANCELLED, 'the client went away'));
    });
    const metadata = headerMetadata(request.headers);
    const ctx: CallContext = {
      metadata,
      transport: 'user',
      peer: peerOf(request),
      trustedPeer: this.opts.trustedPeer?.(metadata) ?? false,
      signal: abort.signal,
    };
    const call: Call = { method, request, reply, text: type.text, ctx, abort };
    if (method.kind === 'server-stream') {
      reply.hijack();
      this.live.add(abort);
      this.stream(call)
        .catch((err: unknown) => this.opts.logger.error({ err, method: method.path }, `gRPC-web stream ${method.path} failed: ${errorMessage(err)}`))
        .finally(() => this.live.delete(abort));
      return reply;
    }
    return this.unary(call);
  }

  private async unary(call: Call): Promise<FastifyReply> {
    const { method, reply } = call;
    let body: Buffer;
    try {
      if (method.kind === 'bidi') {
        throw new GrpcError(GrpcStatus.UNIMPLEMENTED, `${method.path} is a bidirectional stream, which gRPC-web cannot carry: it is served on the inter-node gRPC port`);
      }
      const req: unknown = readRequest(method, call.request.body, call.text, this.maxFrameBytes);
      const res: unknown = await method.handler(req, call.ctx);
      const payload = method.response.encode(res);
      body = Buffer.concat([frameHeader(FLAG_DATA, payload.length), payload, encodeTrailerFrame(GrpcStatus.OK)]);
    } catch (err) {
      const status = this.failure(method, err);
      body = encodeTrailerFrame(status.status, status.message);
    }
    const contentType = call.text ? TEXT_RESPONSE_TYPE : BINARY_RESPONSE_TYPE;
    return reply
      .code(200)
      .header('content-type', contentType)
      .send(call.text ? Buffer.from(body.toString('base64'), 'latin1') : body);
  }

  private async stream(call: Call): Promise<void> {
    const { method, reply, abort } = call;
    const raw = reply.raw;
    const headers: OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) headers[name] = value;
    headers['content-type'] = call.text ? TEXT_RESPONSE_TYPE : BINARY_RESPONSE_TYPE;
    raw.writeHead(200, headers);
    raw.flushHeaders();
    let status: GrpcError | null = null;
    try {
      if (method.kind !== 'server-stream') throw new Error(`${method.path} is not a server-streaming method`);
      const req: unknown = readRequest(method, call.request.body, call.text, this.maxFrameBytes);
      await pump(method.handler(req, call.ctx), abort.signal, async (msg) => {
        if (!writeMessage(raw, call.text, method.response.encode(msg))) await drained(raw);
      });
    } catch (err) {
      status = this.failure(method, err);
    }
    if (raw.destroyed || raw.writableEnded) return;
    if (abort.signal.aborted && !status) status = toGrpcError(abort.signal.reason);
    const trailer = status ? encodeTrailerFrame(status.status, status.message) : encodeTrailerFrame(GrpcStatus.OK);
    // While the app closes, the connection goes too: the server's close() waits for it otherwise.
    const socket = call.request.socket;
    raw.end(call.text ? trailer.toString('base64') : trailer, () => {
      if (this.closing) socket.end();
    });
  }
}

/** Writes one data frame (header and payload without joining them, unless base64 needs one buffer). */
function writeMessage(raw: ServerResponse, text: boolean, payload: Uint8Array): boolean {
  if (raw.destroyed) return true;
  const head = frameHeader(FLAG_DATA, payload.length);
  if (text) return raw.write(Buffer.concat([head, payload]).toString('base64'));
  raw.cork();
  raw.write(head);
  const ok = raw.write(payload);
  raw.uncork();
  return ok;
}

function drained(raw: ServerResponse): Promise<void> {
  if (raw.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      raw.off('drain', done);
      raw.off('close', done);
      resolve();
    };
    raw.on('drain', done);
    raw.on('close', done);
  });
}

const ABORTED: unique symbol = Symbol('aborted');

/**
 * Feeds a handler's messages to `write` until it returns or the signal aborts; then stops the
 * iterator (its finally blocks run once a pending step settles). Handler errors propagate.
 */
export async function pump<T>(source: AsyncIterable<T>, signal: AbortSignal, write: (msg: T) => Promise<void>): Promise<void> {
  const it = source[Symbol.asyncIterator]();
  let finished = false;
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<typeof ABORTED>((resolve) => {
    onAbort = () => resolve(ABORTED);
    if (signal.aborted) resolve(ABORTED);
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    while (!signal.aborted) {
      const step = it.next();
      let r: IteratorResult<T> | typeof ABORTED;
      try {
        r = await Promise.race([step, aborted]);
      } catch (err) {
        finished = true; // an iterator that threw is done
        throw err;
      }
      if (r === ABORTED) {
        step.catch(() => undefined);
        break;
      }
      if (r.done) {
        finished = true;
        break;
      }
      await write(r.value);
    }
  } finally {
    if (onAbort) signal.removeEventListener('abort', onAbort);
    if (!finished) stopIterator(it);
  }
}

/** Calls an iterator's return() without waiting for it (a generator's finally runs once it can). */
function stopIterator(it: AsyncIterator<unknown>): void {
  try {
    const r = it.return?.();
    if (r) r.catch(() => undefined);
  } catch {
    // A broken return() changes nothing for the caller.
  }
}

/**
 * Adds `POST <path>` for every method of the services. Non-gRPC-web requests get 415; streams still
 * open when the app closes end with UNAVAILABLE.
 */
export function registerGrpcWeb(app: FastifyInstance, services: readonly ServiceDef[], opts: GrpcWebOptions): void {
  const transport = new Transport(opts);
  app.addHook('preClose', (done) => {
    transport.shutdown();
    done();
  });
  for (const service of services) {
    for (const method of service.methods) {
      app.post(method.path, { onRequest: (request, reply) => transport.preflight(method, request, reply) }, (request, reply) => transport.handle(method, request, reply));
    }
  }
}
