/**
 * The replica side of the inter-node transport: calls on another node's gRPC port
 * (`--primary-grpc-url`) with @grpc/grpc-js, using the same method tables (service.ts) and codecs as
 * the server. TLS targets present the name `sqld` (sqld's certificates are issued for it, spec §1).
 * Failures surface as GrpcError with the server's status code and message.
 */
import grpc from '@grpc/grpc-js';
import type { Logger } from '../../engine/logger.js';
import type { MessageCodec } from '../proto.js';
import { GrpcError, GrpcStatus } from '../service.js';
import { asBuffer } from './grpc-server.js';

export interface GrpcChannelOptions {
  /** `http://host:port` (h2c) or `https://host:port` (TLS). */
  target: string;
  /** Client certificate and key (mTLS) and the CA the server certificate must chain to (PEM). */
  tls?: { cert?: Buffer; key?: Buffer; ca?: Buffer };
  logger: Logger;
}

/**
 * What a client needs of a method: its path and codecs. UnaryMethod, ServerStreamMethod and BidiMethod
 * (service.ts) and the handler-less references of methods.ts all fit.
 */
export interface MethodSpec<Req, Res> {
  readonly path: string;
  readonly request: MessageCodec<Req>;
  readonly response: MessageCodec<Res>;
}

export type RequestMetadata = Record<string, string | Buffer>;

export interface BidiCall<Req, Res> {
  send(req: Req): void;
  /** Half-closes the request side. */
  end(): void;
  readonly responses: AsyncIterable<Res>;
  cancel(): void;
}

export interface GrpcChannel {
  unary<Req, Res>(method: MethodSpec<Req, Res>, req: Req, metadata: RequestMetadata, opts?: { signal?: AbortSignal; deadlineMs?: number }): Promise<Res>;
  serverStream<Req, Res>(method: MethodSpec<Req, Res>, req: Req, metadata: RequestMetadata, opts?: { signal?: AbortSignal }): AsyncIterable<Res>;
  bidi<Req, Res>(method: MethodSpec<Req, Res>, metadata: RequestMetadata, opts?: { signal?: AbortSignal }): BidiCall<Req, Res>;
  close(): void;
}

/** The name TLS connections to a primary verify (sqld's convention). */
export const TLS_SERVER_NAME = 'sqld';

const KEEPALIVE_TIME_MS = 10_000;
const KEEPALIVE_TIMEOUT_MS = 5_000;

function parseTarget(target: string): { address: string; secure: boolean } {
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    throw new Error(`invalid gRPC URL ${JSON.stringify(target)}: expected http://host:port or https://host:port`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`invalid gRPC URL ${JSON.stringify(target)}: the scheme must be http or https`);
  const secure = url.protocol === 'https:';
  return { address: `${url.hostname}:${url.port || (secure ? '443' : '80')}`, secure };
}

function toMetadata(record: RequestMetadata): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [key, value] of Object.entries(record)) {
    const k = key.toLowerCase();
    if (k.endsWith('-bin')) md.set(k, Buffer.isBuffer(value) ? value : Buffer.from(value, 'utf8'));
    else md.set(k, typeof value === 'string' ? value : value.toString('latin1'));
  }
  return md;
}

/** A grpc-js failure as our GrpcError (status code and details as the server sent them). */
export function fromServiceError(err: unknown): GrpcError {
  if (err instanceof GrpcError) return err;
  const e = err as Partial<grpc.ServiceError> | null;
  if (e && typeof e.code === 'number') {
    const code: number = e.code;
    return new GrpcError(code, e.details ?? e.message ?? '', { cause: err });
  }
  return new GrpcError(GrpcStatus.UNKNOWN, err instanceof Error ? err.message : String(err), { cause: err });
}

/** An aborted call's rejection: the signal's reason (an Error unless someone aborted with something else). */
function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new GrpcError(GrpcStatus.CANCELLED, String(reason));
}

function serializer<T>(codec: MessageCodec<T>): (msg: T) => Buffer {
  return (msg) => asBuffer(codec.encode(msg));
}

function deserializer<T>(codec: MessageCodec<T>): (bytes: Buffer) => T {
  return (bytes) => codec.decode(bytes);
}

/** Reads a grpc-js response stream; an abort rejects with the signal's reason, an early exit cancels. */
async function* readResponses<Res>(call: grpc.ClientReadableStream<Res> | grpc.ClientDuplexStream<unknown, Res>, signal: AbortSignal | undefined): AsyncGenerator<Res> {
  const onAbort = (): void => call.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  let finished = false;
  try {
    if (signal?.aborted) call.cancel();
    for await (const msg of call as AsyncIterable<Res>) {
      if (signal?.aborted) break;
      yield msg;
    }
    finished = true;
    if (signal?.aborted) throw abortReason(signal);
  } catch (err) {
    finished = true;
    if (signal?.aborted) throw abortReason(signal);
    throw fromServiceError(err);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (!finished) call.cancel();
  }
}

export function createGrpcChannel(opts: GrpcChannelOptions): GrpcChannel {
  const { address, secure } = parseTarget(opts.target);
  const credentials = secure ? grpc.credentials.createSsl(opts.tls?.ca ?? null, opts.tls?.key ?? null, opts.tls?.cert ?? null) : grpc.credentials.createInsecure();
  const options: grpc.ChannelOptions = {
    'grpc.max_receive_message_length': -1,
    'grpc.max_send_message_length': -1,
    'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS,
    'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
    // a primary that comes back is found within seconds (grpc-js' own default backs off to 2 minutes)
    'grpc.initial_reconnect_backoff_ms': 100,
    'grpc.max_reconnect_backoff_ms': 5000,
  };
  if (secure) options['grpc.ssl_target_name_override'] = TLS_SERVER_NAME;
  const client = new grpc.Client(address, credentials, options);
  const log = opts.logger.child({ grpcTarget: opts.target });

  return {
    unary<Req, Res>(method: MethodSpec<Req, Res>, req: Req, metadata: RequestMetadata, callOpts: { signal?: AbortSignal; deadlineMs?: number } = {}): Promise<Res> {
      const { signal, deadlineMs } = callOpts;
      return new Promise<Res>((resolve, reject) => {
        if (signal?.aborted) {
          reject(abortReason(signal));
          return;
        }
        const callOptions: grpc.CallOptions = deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs };
        const onAbort = (): void => call.cancel();
        const call = client.makeUnaryRequest(method.path, serializer(method.request), deserializer(method.response), req, toMetadata(metadata), callOptions, (err, res) => {
          signal?.removeEventListener('abort', onAbort);
          if (signal?.aborted) reject(abortReason(signal));
          else if (err) reject(fromServiceError(err));
          else if (res === undefined) reject(new GrpcError(GrpcStatus.INTERNAL, `${method.path}: no response message`));
          else resolve(res);
        });
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    },

    serverStream<Req, Res>(method: MethodSpec<Req, Res>, req: Req, metadata: RequestMetadata, callOpts: { signal?: AbortSignal } = {}): AsyncIterable<Res> {
      return {
        [Symbol.asyncIterator]: () => {
          const call = client.makeServerStreamRequest(method.path, serializer(method.request), deserializer(method.response), req, toMetadata(metadata), {});
          // An 'error' nobody listens to would be thrown; the iteration sees it anyway.
          call.on('error', (err: unknown) => log.debug({ err, method: method.path }, 'gRPC stream ended with an error'));
          return readResponses(call, callOpts.signal);
        },
      };
    },

    bidi<Req, Res>(method: MethodSpec<Req, Res>, metadata: RequestMetadata, callOpts: { signal?: AbortSignal } = {}): BidiCall<Req, Res> {
      const call = client.makeBidiStreamRequest(method.path, serializer(method.request), deserializer(method.response), toMetadata(metadata), {});
      // Write failures also end the response side, where the caller sees them.
      call.on('error', (err: unknown) => log.debug({ err, method: method.path }, 'gRPC stream ended with an error'));
      const signal = callOpts.signal;
      if (signal?.aborted) call.cancel();
      else signal?.addEventListener('abort', () => call.cancel(), { once: true });
      const responses = readResponses<Res>(call, signal);
      return {
        send: (req) => {
          call.write(req);
        },
        end: () => call.end(),
        responses,
        cancel: () => call.cancel(),
      };
    },

    close: () => client.close(),
  };
}
