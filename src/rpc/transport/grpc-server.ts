/**
 * The inter-node transport (spec sqld-wire.md §6.1; design.md §7): native gRPC over HTTP/2 with
 * @grpc/grpc-js, cleartext (h2c) or TLS with mandatory, verified client certificates. grpc-js moves
 * raw Buffers; our codecs encode and decode them here, so a request that does not decode is answered
 * with INVALID_ARGUMENT (grpc-js itself would say INTERNAL).
 */
import grpc from '@grpc/grpc-js';
import { errorMessage, type Logger } from '../../engine/logger.js';
import { pump } from '../grpc-web/routes.js';
import type { MessageCodec } from '../proto.js';
import { ProtoDecodeError } from '../proto.js';
import { GrpcError, GrpcStatus, toGrpcError, type AnyMethod, type CallContext, type CallMetadata, type ServiceDef } from '../service.js';

export interface GrpcServerOptions {
  host: string;
  port: number;
  services: readonly ServiceDef[];
  logger: Logger;
  /** Server certificate, key and the CA that client certificates must chain to (all PEM). */
  tls?: { cert: Buffer; key: Buffer; ca: Buffer };
  /** Whether a call comes from another node of the cluster; by default: its client certificate was verified. */
  trustedPeer?: (meta: CallMetadata, clientCertVerified: boolean) => boolean;
  /** Largest request message accepted (64 MiB by default; sqld replicas may send large programs). */
  maxMessageBytes?: number;
}

export interface GrpcServerHandle {
  readonly address: { host: string; port: number };
  /** Stops accepting calls, ends live streams with UNAVAILABLE, and cancels what is left after graceMs (2 s). */
  close(graceMs?: number): Promise<void>;
}

const DEFAULT_MAX_RECEIVE = 64 * 1024 * 1024;
const DEFAULT_GRACE_MS = 2000;
/** Requests a bidi call buffers before it stops reading from the client. */
const REQUEST_HIGH_WATER = 16;

const identity = (b: Buffer): Buffer => b;

export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function hostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

function metadataOf(md: grpc.Metadata): CallMetadata {
  return {
    get: (key) => {
      for (const v of md.get(key.toLowerCase())) if (typeof v === 'string') return v;
      return undefined;
    },
    getBinary: (key) => {
      const k = key.toLowerCase();
      if (!k.endsWith('-bin')) return undefined;
      const v = md.get(k)[0];
      return Buffer.isBuffer(v) ? v : undefined;
    },
  };
}

function statusOf(err: GrpcError): Partial<grpc.StatusObject> {
  return { code: err.status as number, details: err.message };
}

function decodeRequest<Req>(codec: MessageCodec<Req>, bytes: Buffer): Req {
  try {
    return codec.decode(bytes);
  } catch (err) {
    if (err instanceof ProtoDecodeError) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, `invalid request message: ${err.message}`);
    throw err;
  }
}

type SurfaceCall = grpc.ServerUnaryCall<Buffer, Buffer> | grpc.ServerWritableStream<Buffer, Buffer> | grpc.ServerDuplexStream<Buffer, Buffer>;

/** Waits until a stream accepts more writes, or the call is gone. */
function drained(call: grpc.ServerWritableStream<Buffer, Buffer> | grpc.ServerDuplexStream<Buffer, Buffer>, signal: AbortSignal): Promise<void> {
  if (signal.aborted || call.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      call.off('drain', done);
      call.off('close', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    call.on('drain', done);
    call.on('close', done);
    signal.addEventListener('abort', done);
  });
}

/** A bidi call's readable side as decoded requests, with backpressure; a bad message fails the call. */
class RequestReader<Req> implements AsyncIterator<Req> {
  private readonly queue: Buffer[] = [];
  private ended = false;
  private error: GrpcError | null = null;
  private waiter: { resolve: (r: IteratorResult<Req>) => void; reject: (e: unknown) => void } | null = null;
  /** Set when a request did not decode: the call ends with this status whatever the handler does. */
  decodeFailure: GrpcError | null = null;

  constructor(
    private readonly call: grpc.ServerDuplexStream<Buffer, Buffer>,
    private readonly codec: MessageCodec<Req>,
    signal: AbortSignal,
  ) {
    call.on('data', (chunk: Buffer) => {
      if (this.ended) return;
      this.queue.push(chunk);
      if (this.queue.length >= REQUEST_HIGH_WATER) call.pause();
      this.wake();
    });
    call.on('end', () => this.finish(null));
    signal.addEventListener('abort', () => this.finish(toGrpcError(signal.reason)), { once: true });
  }

  private finish(error: GrpcError | null): void {
    if (this.ended) return;
    this.ended = true;
    this.error = error;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    if (!w) return;
    this.waiter = null;
    this.next().then(w.resolve, w.reject);
  }

  next(): Promise<IteratorResult<Req>> {
    const chunk = this.queue.shift();
    if (chunk) {
      if (this.queue.length < REQUEST_HIGH_WATER / 2 && this.call.isPaused()) this.call.resume();
      try {
        return Promise.resolve({ done: false, value: decodeRequest(this.codec, chunk) });
      } catch (err) {
        const failure = toGrpcError(err);
        this.decodeFailure = failure;
        this.queue.length = 0;
        this.finish(failure);
        return Promise.reject(failure);
      }
    }
    if (this.ended) return this.error ? Promise.reject(this.error) : Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<Req>> {
    this.queue.length = 0;
    this.finish(null);
    return Promise.resolve({ done: true, value: undefined });
  }
}

class Calls {
  /** Live streaming calls; close() ends them with UNAVAILABLE. */
  readonly streams = new Set<AbortController>();

  constructor(
    private readonly opts: GrpcServerOptions,
    private readonly clientCertVerified: boolean,
  ) {}

  private context(call: SurfaceCall, abort: AbortController): CallContext {
    const metadata = metadataOf(call.metadata);
    const verified = this.clientCertVerified;
    (call as NodeJS.EventEmitter).on('cancelled', () => abort.abort(new GrpcError(GrpcStatus.CANCELLED, 'the client cancelled the call')));
    return {
      metadata,
      transport: 'inter-node',
      peer: call.getPeer(),
      trustedPeer: this.opts.trustedPeer ? this.opts.trustedPeer(metadata, verified) : verified,
      signal: abort.signal,
    };
  }

  private failure(method: AnyMethod, err: unknown): GrpcError {
    const status = toGrpcError(err);
    if (!(err instanceof GrpcError)) this.opts.logger.error({ err, method: method.path }, `gRPC ${method.path} failed: ${errorMessage(err)}`);
    return status;
  }

  unary(method: AnyMethod & { kind: 'unary' }): grpc.handleUnaryCall<Buffer, Buffer> {
    return (call, callback) => {
      const abort = new AbortController();
      const ctx = this.context(call, abort);
      (async () => {
        const res: unknown = await method.handler(decodeRequest(method.request, call.request), ctx);
        return asBuffer(method.response.encode(res));
      })().then(
        (buf) => callback(null, buf),
        (err: unknown) => callback(statusOf(this.failure(method, err))),
      );
    };
  }

  serverStream(method: AnyMethod & { kind: 'server-stream' }): grpc.handleServerStreamingCall<Buffer, Buffer> {
    return (call) => {
      const abort = new AbortController();
      const ctx = this.context(call, abort);
      this.streams.add(abort);
      const run = async (): Promise<void> => {
        const req: unknown = decodeRequest(method.request, call.request);
        await pump(method.handler(req, ctx), abort.signal, async (msg) => {
          if (!call.write(asBuffer(method.response.encode(msg)))) await drained(call, abort.signal);
        });
      };
      this.settle(method, call, abort, run(), null);
    };
  }

  bidi(method: AnyMethod & { kind: 'bidi' }): grpc.handleBidiStreamingCall<Buffer, Buffer> {
    return (call) => {
      const abort = new AbortController();
      const ctx = this.context(call, abort);
      this.streams.add(abort);
      const reader = new RequestReader<unknown>(call, method.request, abort.signal);
      const requests: AsyncIterable<unknown> = { [Symbol.asyncIterator]: () => reader };
      const run = pump(method.handler(requests, ctx), abort.signal, async (msg) => {
        if (!call.write(asBuffer(method.response.encode(msg)))) await drained(call, abort.signal);
      });
      this.settle(method, call, abort, run, reader);
    };
  }

  /** Ends a streaming call with the outcome of its handler. Never throws. */
  private settle(method: AnyMethod, call: grpc.ServerWritableStream<Buffer, Buffer> | grpc.ServerDuplexStream<Buffer, Buffer>, abort: AbortController, run: Promise<void>, reader: RequestReader<unknown> | null): void {
    run
      .then(
        () => reader?.decodeFailure ?? (abort.signal.aborted ? toGrpcError(abort.signal.reason) : null),
        (err: unknown) => reader?.decodeFailure ?? this.failure(method, err),
      )
      .then((status) => {
        if (call.cancelled || call.destroyed || call.writableEnded) return;
        if (status) call.emit('error', statusOf(status));
        else call.end();
      })
      .catch((err: unknown) => this.opts.logger.error({ err, method: method.path }, `gRPC ${method.path}: ending the call failed: ${errorMessage(err)}`))
      .finally(() => this.streams.delete(abort));
  }
}

function buildService(service: ServiceDef, calls: Calls): { definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation } {
  const definition: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
  const implementation: grpc.UntypedServiceImplementation = {};
  for (const method of service.methods) {
    const name = method.path.slice(method.path.lastIndexOf('/') + 1);
    definition[name] = {
      path: method.path,
      requestStream: method.kind === 'bidi',
      responseStream: method.kind !== 'unary',
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
    };
    implementation[name] = method.kind === 'unary' ? calls.unary(method) : method.kind === 'server-stream' ? calls.serverStream(method) : calls.bidi(method);
  }
  return { definition, implementation };
}

/** Starts the gRPC server; rejects with an Error naming the address when it cannot listen. */
export async function startGrpcServer(opts: GrpcServerOptions): Promise<GrpcServerHandle> {
  const server = new grpc.Server({
    'grpc.max_receive_message_length': opts.maxMessageBytes ?? DEFAULT_MAX_RECEIVE,
    'grpc.max_send_message_length': -1,
  });
  const calls = new Calls(opts, opts.tls !== undefined);
  for (const service of opts.services) {
    const { definition, implementation } = buildService(service, calls);
    server.addService(definition, implementation);
  }
  const credentials = opts.tls ? grpc.ServerCredentials.createSsl(opts.tls.ca, [{ cert_chain: opts.tls.cert, private_key: opts.tls.key }], true) : grpc.ServerCredentials.createInsecure();
  const where = hostPort(opts.host, opts.port);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(where, credentials, (err, bound) => {
      if (err) reject(new Error(`cannot listen for gRPC on ${where}: ${err.message}`, { cause: err }));
      else resolve(bound);
    });
  });
  let closing: Promise<void> | null = null;
  return {
    address: { host: opts.host, port },
    close(graceMs = DEFAULT_GRACE_MS) {
      closing ??= new Promise<void>((resolve) => {
        for (const abort of calls.streams) abort.abort(new GrpcError(GrpcStatus.UNAVAILABLE, 'server is shutting down'));
        let settled = false;
        const finish = (): void => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          server.forceShutdown();
          finish();
        }, graceMs);
        server.tryShutdown(() => finish());
      });
      return closing;
    },
  };
}
