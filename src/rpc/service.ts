/**
 * Transport-neutral gRPC services. A service is a table of methods (path, kind, codecs) and handlers
 * that see decoded messages and a CallContext; the transports (grpc-server.ts on the inter-node port,
 * grpc-web/routes.ts on the user port) do framing, metadata and status codes. One implementation of
 * each service serves both transports (design.md §7).
 */
import type { MessageCodec } from './proto.js';

/** gRPC status codes (the numbers are the wire values). */
export enum GrpcStatus {
  OK = 0,
  CANCELLED = 1,
  UNKNOWN = 2,
  INVALID_ARGUMENT = 3,
  DEADLINE_EXCEEDED = 4,
  NOT_FOUND = 5,
  ALREADY_EXISTS = 6,
  PERMISSION_DENIED = 7,
  RESOURCE_EXHAUSTED = 8,
  FAILED_PRECONDITION = 9,
  ABORTED = 10,
  OUT_OF_RANGE = 11,
  UNIMPLEMENTED = 12,
  INTERNAL = 13,
  UNAVAILABLE = 14,
  DATA_LOSS = 15,
  UNAUTHENTICATED = 16,
}

/** A failure a handler reports to its caller as a gRPC status with a message (sqld's texts). */
export class GrpcError extends Error {
  constructor(
    readonly status: GrpcStatus,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'GrpcError';
  }
}

/** Request metadata (headers) as the transports hand it over; keys are lower-case. */
export interface CallMetadata {
  /** An ASCII header's value (the first one if repeated). */
  get(key: string): string | undefined;
  /** A `-bin` header's decoded bytes (base64, with or without padding). */
  getBinary(key: string): Buffer | undefined;
}

export type Transport = 'inter-node' | 'user';

export interface CallContext {
  readonly metadata: CallMetadata;
  readonly transport: Transport;
  /** The peer's address as the transport saw it (for logs and legacy sessions). */
  readonly peer: string;
  /**
   * The peer proved it is another node of this cluster (a client certificate verified against
   * `--grpc-ca-cert-file`, or the shared inter-node secret): only then is `x-proxy-authorization` trusted.
   */
  readonly trustedPeer: boolean;
  /** Aborts when the caller cancels or disconnects. */
  readonly signal: AbortSignal;
}

export type MethodKind = 'unary' | 'server-stream' | 'bidi';

interface MethodBase<Req, Res> {
  /** `/package.Service/Method`. */
  readonly path: string;
  readonly request: MessageCodec<Req>;
  readonly response: MessageCodec<Res>;
}

export interface UnaryMethod<Req, Res> extends MethodBase<Req, Res> {
  readonly kind: 'unary';
  readonly handler: (req: Req, ctx: CallContext) => Promise<Res>;
}

export interface ServerStreamMethod<Req, Res> extends MethodBase<Req, Res> {
  readonly kind: 'server-stream';
  /** Each yielded message is sent as it comes; returning ends the call with OK, throwing with its status. */
  readonly handler: (req: Req, ctx: CallContext) => AsyncIterable<Res>;
}

export interface BidiMethod<Req, Res> extends MethodBase<Req, Res> {
  readonly kind: 'bidi';
  /** `requests` ends when the client half-closes; it throws GrpcError for a message that does not decode. */
  readonly handler: (requests: AsyncIterable<Req>, ctx: CallContext) => AsyncIterable<Res>;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyMethod = UnaryMethod<any, any> | ServerStreamMethod<any, any> | BidiMethod<any, any>;

/** One gRPC service: its full name (`wal_log.ReplicationLog`) and methods. */
export interface ServiceDef {
  readonly name: string;
  readonly methods: readonly AnyMethod[];
}

/** Maps anything a handler threw to the status the caller sees (GrpcError as is, the rest INTERNAL). */
export function toGrpcError(err: unknown): GrpcError {
  if (err instanceof GrpcError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new GrpcError(GrpcStatus.INTERNAL, message, { cause: err });
}
