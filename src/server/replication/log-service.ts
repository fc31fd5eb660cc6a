/**
 * `wal_log.ReplicationLog` on a primary (spec §6.5): Hello hands out the log id, the session token
 * and the replication index; LogEntries streams frames live, BatchLogEntries returns what is there
 * (≥ 1024 frames, up to a transaction boundary), Snapshot streams a compacted range newest first.
 * Everything is read through the namespace's FrameSource, never the log itself.
 */
import type { NamespaceDb } from '../../engine/namespace-db.js';
import type { Logger } from '../../engine/logger.js';
import type { FrameSource } from '../../engine/pipeline/frame-source.js';
import { encodeFrame, type Frame } from '../../engine/wal/frame.js';
import type { DatabaseConfig, Frames, HelloRequest, HelloResponse, LogOffset, WireFrame } from '../../rpc/messages.js';
import { WalFlavor } from '../../rpc/messages.js';
import { replicationLog } from '../../rpc/methods.js';
import { GrpcError, GrpcStatus, type CallContext, type ServerStreamMethod, type ServiceDef, type UnaryMethod } from '../../rpc/service.js';
import type { SessionTokens } from './session-tokens.js';

/** BatchLogEntries returns at least this many frames (when there are), then up to the next commit. */
export const BATCH_MIN_FRAMES = 1024;
/** Legacy (versionless) Hello peers remembered at most. */
const MAX_LEGACY_PEERS = 1024;

export interface LogCallTarget {
  namespace: string;
  db: NamespaceDb;
}

export interface LogServiceDeps {
  /** Namespace and authentication of a call; throws GrpcError (NAMESPACE_DOESNT_EXIST, UNAUTHENTICATED…). */
  resolve(ctx: CallContext): Promise<LogCallTarget>;
  tokens: SessionTokens;
  /** The namespace's config as HelloResponse.config carries it. */
  configOf(namespace: string): DatabaseConfig;
  logger: Logger;
}

const NO_HELLO = (): GrpcError => new GrpcError(GrpcStatus.FAILED_PRECONDITION, 'NO_HELLO');

function wireFrame(f: Frame, sizeAfter = f.sizeAfter): WireFrame {
  return { data: encodeFrame(sizeAfter === f.sizeAfter ? f : { ...f, sizeAfter }) };
}

function codeOf(err: unknown): unknown {
  return (err as { code?: unknown } | null)?.code;
}

/** Engine errors of a log read → the statuses replicas react to. */
function logReadError(err: unknown): GrpcError {
  if (err instanceof GrpcError) return err;
  if (codeOf(err) === 'NEED_SNAPSHOT') return new GrpcError(GrpcStatus.FAILED_PRECONDITION, 'NEED_SNAPSHOT');
  // A new log began: the stream ends; the replica's next Hello sees the new log id.
  if (codeOf(err) === 'LOG_CHANGED') return new GrpcError(GrpcStatus.UNAVAILABLE, 'the replication log was replaced; say Hello again');
  return new GrpcError(GrpcStatus.INTERNAL, `error reading the replication log: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

interface LogTarget {
  namespace: string;
  source: FrameSource;
  db: NamespaceDb;
}

/** A legacy peer: which port it called (the transport), its address and source port, the namespace. */
function legacyPeerKey(ctx: CallContext, namespace: string): string {
  return `${ctx.transport}\n${ctx.peer}\n${namespace}`;
}

export class LogService {
  readonly #deps: LogServiceDeps;
  /**
   * Peers that said Hello without a handshake version (legacy): accepted without a session token.
   * Keyed by port as well as address (legacyPeerKey): a client of one port may have the same source
   * address and port as a client of the other.
   */
  readonly #legacyPeers = new Set<string>();

  constructor(deps: LogServiceDeps) {
    this.#deps = deps;
  }

  get service(): ServiceDef {
    const hello: UnaryMethod<HelloRequest, HelloResponse> = { kind: 'unary', ...replicationLog.hello, handler: (req, ctx) => this.hello(req, ctx) };
    const logEntries: ServerStreamMethod<LogOffset, WireFrame> = { kind: 'server-stream', ...replicationLog.logEntries, handler: (req, ctx) => this.logEntries(req, ctx) };
    const batch: UnaryMethod<LogOffset, Frames> = { kind: 'unary', ...replicationLog.batchLogEntries, handler: (req, ctx) => this.batchLogEntries(req, ctx) };
    const snapshot: ServerStreamMethod<LogOffset, WireFrame> = { kind: 'server-stream', ...replicationLog.snapshot, handler: (req, ctx) => this.snapshot(req, ctx) };
    return { name: 'wal_log.ReplicationLog', methods: [hello, logEntries, batch, snapshot] };
  }

  async hello(req: HelloRequest, ctx: CallContext): Promise<HelloResponse> {
    const { namespace, source } = await this.#target(ctx);
    if (req.handshakeVersion === undefined) this.#rememberLegacyPeer(legacyPeerKey(ctx, namespace));
    const index = source.replicationIndex();
    return {
      generationId: this.#deps.tokens.processId,
      generationStartIndex: 0n,
      logId: source.logId,
      sessionToken: Buffer.from(this.#deps.tokens.token(namespace), 'ascii'),
      ...(index === null ? {} : { currentReplicationIndex: index }),
      config: this.#deps.configOf(namespace),
    };
  }

  async *logEntries(req: LogOffset, ctx: CallContext): AsyncGenerator<WireFrame> {
    const { namespace, source, db } = await this.#session(req, ctx);
    const signal = AbortSignal.any([ctx.signal, this.#deps.tokens.changed(namespace)]);
    // A replica following the log keeps the namespace loaded (`--max-active-namespaces`).
    const release = db.hold();
    try {
      for await (const txn of source.transactions(req.nextOffset, signal)) {
        for (const f of txn.frames) if (f.frameNo >= req.nextOffset) yield wireFrame(f);
      }
    } catch (err) {
      if (signal.aborted) return; // the caller left, or the config changed (its next call gets NO_HELLO)
      throw logReadError(err);
    } finally {
      release();
    }
  }

  async batchLogEntries(req: LogOffset, ctx: CallContext): Promise<Frames> {
    const { source } = await this.#session(req, ctx);
    const index = source.replicationIndex();
    const frames: WireFrame[] = [];
    if (index === null || req.nextOffset > index) return { frames };
    const stop = new AbortController();
    try {
      for await (const txn of source.transactions(req.nextOffset, AbortSignal.any([ctx.signal, stop.signal]))) {
        for (const f of txn.frames) if (f.frameNo >= req.nextOffset) frames.push(wireFrame(f));
        if (frames.length >= BATCH_MIN_FRAMES || txn.lastFrameNo >= index) break;
      }
    } catch (err) {
      throw logReadError(err);
    } finally {
      stop.abort();
    }
    return { frames };
  }

  async *snapshot(req: LogOffset, ctx: CallContext): AsyncGenerator<WireFrame> {
    const { source } = await this.#session(req, ctx);
    const ref = await source.snapshotFor(req.nextOffset);
    if (ref === null) throw new GrpcError(GrpcStatus.UNAVAILABLE, 'snapshot not found');
    // Frames descend; the last one sent carries the database size. Hold one back to know which is last.
    let held: Frame | null = null;
    try {
      for (const f of source.snapshotFrames(ref)) {
        if (ctx.signal.aborted) return;
        if (f.frameNo < req.nextOffset) continue;
        if (held !== null) yield wireFrame(held, 0);
        held = f;
      }
    } catch (err) {
      throw logReadError(err);
    }
    if (held !== null) yield wireFrame(held, ref.sizeAfter);
  }

  #rememberLegacyPeer(key: string): void {
    this.#legacyPeers.delete(key);
    this.#legacyPeers.add(key);
    // bounded: the oldest peers are forgotten first (they say Hello again after NO_HELLO)
    for (const old of this.#legacyPeers) {
      if (this.#legacyPeers.size <= MAX_LEGACY_PEERS) break;
      this.#legacyPeers.delete(old);
    }
  }

  /** Namespace, authentication, primary check and flavor, plus the session check of log calls. */
  async #session(req: LogOffset, ctx: CallContext): Promise<LogTarget> {
    if (req.walFlavor === WalFlavor.Libsql) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'libsql wal not supported');
    const target = await this.#target(ctx);
    const token = ctx.metadata.get('x-session-token');
    if (token === undefined) {
      if (!this.#legacyPeers.has(legacyPeerKey(ctx, target.namespace))) throw NO_HELLO();
    } else if (token !== this.#deps.tokens.token(target.namespace)) {
      throw NO_HELLO();
    }
    return target;
  }

  async #target(ctx: CallContext): Promise<LogTarget> {
    const { namespace, db } = await this.#deps.resolve(ctx);
    const primary = db.frames;
    if (primary === null) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, 'not a primary');
    return { namespace, source: primary.frameSource(), db };
  }
}
