/**
 * A replica namespace's link to its primary (spec §7.1): Hello, then LogEntries into the replica's
 * applier until the stream ends or fails; NO_HELLO or a primary restart → Hello again; a new log id
 * → the applier starts over; a primary that is down or is not a primary → a clear log line and a
 * retry with backoff, while reads of what the replica has go on. It runs in the background and
 * never throws out of its loop.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { NamespacePaths } from '../../engine/data-dir.js';
import { errorMessage, type Logger } from '../../engine/logger.js';
import type { ReplicaRole } from '../../engine/roles/replica-role.js';
import type { DatabaseConfig, HelloResponse } from '../../rpc/messages.js';
import { GrpcError, GrpcStatus } from '../../rpc/service.js';
import type { PrimaryClient } from './primary-client.js';
import { grpcDetail } from './primary-streams.js';
import { RemoteFrameSource } from './remote-frame-source.js';

export interface ReplicatorOptions {
  namespace: string;
  role: ReplicaRole;
  paths: NamespacePaths;
  client: PrimaryClient;
  logger: Logger;
  /** Retry delays while the primary cannot be reached (ms): first, then doubled up to the last. */
  backoffMs?: readonly [number, number];
  /** The namespace config Hello carried (stored by the caller). */
  onConfig?: (config: DatabaseConfig) => void;
}

export interface ReplicationStatus {
  connected: boolean;
  logId: string | null;
  /** The newest commit known to be on the primary. */
  primaryIndex: bigint | null;
  appliedIndex: bigint | null;
  /** Frames the replica is behind (0 when caught up or unknown). */
  lagFrames: bigint;
  lastError: string | null;
}

const DEFAULT_BACKOFF: readonly [number, number] = [100, 5000];
/** A follow that ends sooner than this without progress counts as a failure (no hot loop). */
const MIN_HEALTHY_MS = 1000;

function describeFailure(err: unknown): string {
  if (err instanceof GrpcError) {
    if (err.status === GrpcStatus.UNAVAILABLE) return `the primary is unavailable (${grpcDetail(err.message)})`;
    if (err.status === GrpcStatus.INVALID_ARGUMENT && err.message === 'not a primary') return 'the server at the primary URL is not a primary';
    if (err.status === GrpcStatus.FAILED_PRECONDITION && err.message === 'NAMESPACE_DOESNT_EXIST') return 'the namespace does not exist on the primary';
    if (err.status === GrpcStatus.UNIMPLEMENTED) return `the server at the primary URL does not serve replication (${grpcDetail(err.message)})`;
    return `${GrpcStatus[err.status] ?? err.status}: ${grpcDetail(err.message)}`;
  }
  return grpcDetail(errorMessage(err));
}

export class Replicator {
  readonly #opts: ReplicatorOptions;
  readonly #stop = new AbortController();
  #loop: Promise<void> | null = null;
  #connected = false;
  #helloIndex: bigint | null = null;
  #primaryIndex: bigint | null = null;
  #lastError: string | null = null;
  #sawHello = false;

  constructor(opts: ReplicatorOptions) {
    this.#opts = opts;
  }

  start(): void {
    this.#loop ??= this.#run().catch((err: unknown) => this.#opts.logger.error({ err, namespace: this.#opts.namespace }, 'replication loop failed'));
  }

  async stop(): Promise<void> {
    this.#stop.abort(new Error('the replica is shutting down'));
    await this.#loop;
  }

  status(): ReplicationStatus {
    const applied = this.#opts.role.replicationIndex();
    const primary = this.#primaryIndex;
    const lag = primary === null ? 0n : primary - (applied ?? -1n);
    return { connected: this.#connected, logId: this.#opts.role.logId(), primaryIndex: primary, appliedIndex: applied, lagFrames: lag > 0n ? lag : 0n, lastError: this.#lastError };
  }

  /**
   * Reads may run locally: the replica applied what the primary had at the last Hello (or has never
   * reached the primary, and serves what it has). Until then every request goes to the primary.
   */
  caughtUp(): boolean {
    if (this.#helloIndex === null) return true;
    const applied = this.#opts.role.replicationIndex();
    return applied !== null && applied >= this.#helloIndex && this.#opts.role.logId() === this.#helloLogId;
  }

  #helloLogId: string | null = null;

  async #run(): Promise<void> {
    const { logger, namespace } = this.#opts;
    const [first, max] = this.#opts.backoffMs ?? DEFAULT_BACKOFF;
    let delay = first;
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      const started = performance.now();
      const appliedBefore = this.#opts.role.replicationIndex();
      let failure: unknown = null;
      try {
        const hello = await this.#opts.client.hello(namespace, signal);
        this.#onHello(hello);
        await this.#opts.role.follow(new RemoteFrameSource(this.#opts.client, namespace, hello, this.#opts.paths, { onPrimaryIndex: (i) => (this.#primaryIndex = i) }), signal);
      } catch (err) {
        failure = err;
      }
      if (signal.aborted) break;
      const progressed = this.#opts.role.replicationIndex() !== appliedBefore || performance.now() - started >= MIN_HEALTHY_MS;
      if (failure instanceof GrpcError && failure.status === GrpcStatus.FAILED_PRECONDITION && failure.message === 'NO_HELLO') {
        logger.debug({ namespace }, 'the primary asks for a new handshake');
        if (progressed) continue;
      }
      if (failure === null && progressed) {
        logger.info({ namespace }, 'the primary ended the log stream; handshaking again');
        continue;
      }
      if (progressed) delay = first;
      const message = failure === null ? 'the primary keeps ending the log stream' : describeFailure(failure);
      this.#disconnected(message, delay);
      try {
        await sleep(delay, undefined, { signal });
      } catch {
        break;
      }
      delay = Math.min(delay * 2, max);
    }
    this.#connected = false;
  }

  #onHello(hello: HelloResponse): void {
    const { logger, namespace, role } = this.#opts;
    this.#helloIndex = hello.currentReplicationIndex ?? null;
    this.#helloLogId = hello.logId;
    if (this.#primaryIndex === null || this.#helloIndex === null || this.#helloIndex > this.#primaryIndex || role.logId() !== hello.logId) this.#primaryIndex = this.#helloIndex;
    if (hello.config) this.#opts.onConfig?.(hello.config);
    const applied = role.replicationIndex();
    const lag = this.status().lagFrames;
    const fields = { namespace, primary: this.#opts.client.url, logId: hello.logId, primaryIndex: this.#helloIndex?.toString() ?? null, appliedIndex: applied?.toString() ?? null, lagFrames: lag.toString() };
    if (role.logId() !== null && role.logId() !== hello.logId) logger.warn(fields, 'the primary has a new replication log; the replica starts over');
    if (!this.#connected) logger.info(fields, this.#sawHello ? 'reconnected to the primary' : 'connected to the primary');
    this.#connected = true;
    this.#sawHello = true;
    this.#lastError = null;
  }

  #disconnected(message: string, retryMs: number): void {
    const { logger, namespace } = this.#opts;
    if (this.#connected || this.#lastError !== message) {
      logger.warn({ namespace, primary: this.#opts.client.url, retryMs, appliedIndex: this.#opts.role.replicationIndex()?.toString() ?? null }, `lost the primary: ${message}; retrying`);
    }
    this.#connected = false;
    this.#lastError = message;
  }
}
