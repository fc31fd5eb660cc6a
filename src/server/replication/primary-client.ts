/**
 * A replica's line to its primary's inter-node port (`--primary-grpc-url`): one HTTP/2 channel for
 * every namespace, calls of ReplicationLog and Proxy with sqld's metadata (spec §6.2, §7.1). Session
 * tokens from Hello are kept per namespace and sent on every log call.
 */
import type { Logger } from '../../engine/logger.js';
import { replicationLog, proxy } from '../../rpc/methods.js';
import type { ExecReq, ExecResp, HelloResponse, WireFrame } from '../../rpc/messages.js';
import { WalFlavor } from '../../rpc/messages.js';
import { createGrpcChannel, type BidiCall, type GrpcChannel } from '../../rpc/transport/grpc-client.js';
import { NODE_SECRET_HEADER } from './node-secret.js';

export interface PrimaryTls {
  cert?: Buffer;
  key?: Buffer;
  ca?: Buffer;
}

export interface PrimaryClientOptions {
  url: string;
  tls: PrimaryTls | null;
  /** Sent as `x-libsqlctl-node-secret` so the primary trusts forwarded principals without mTLS. */
  nodeSecret: string | null;
  logger: Logger;
}

/** Credentials a forwarded request carries: the principal as sqld serializes it, and the user's own. */
export interface ForwardCredentials {
  proxyAuthorization: string;
  credential: string | undefined;
}

export { NODE_SECRET_HEADER };

/** Hello is answered quickly or not at all: a primary that does not answer in time counts as down. */
const HELLO_DEADLINE_MS = 10_000;

export class PrimaryClient {
  readonly url: string;
  readonly #channel: GrpcChannel;
  readonly #nodeSecret: string | null;
  readonly #tokens = new Map<string, string>();

  constructor(opts: PrimaryClientOptions) {
    this.url = opts.url;
    this.#nodeSecret = opts.nodeSecret;
    this.#channel = createGrpcChannel({ target: opts.url, ...(opts.tls ? { tls: opts.tls } : {}), logger: opts.logger });
  }

  #metadata(namespace: string, extra: Record<string, string | undefined> = {}): Record<string, string | Buffer> {
    const md: Record<string, string | Buffer> = { 'x-namespace-bin': Buffer.from(namespace, 'utf8') };
    if (this.#nodeSecret !== null) md[NODE_SECRET_HEADER] = this.#nodeSecret;
    for (const [k, v] of Object.entries(extra)) if (v !== undefined) md[k] = v;
    return md;
  }

  #sessionMetadata(namespace: string): Record<string, string | Buffer> {
    return this.#metadata(namespace, { 'x-session-token': this.#tokens.get(namespace) });
  }

  async hello(namespace: string, signal?: AbortSignal): Promise<HelloResponse> {
    const res = await this.#channel.unary(replicationLog.hello, { handshakeVersion: 1n }, this.#metadata(namespace), {
      ...(signal ? { signal } : {}),
      deadlineMs: HELLO_DEADLINE_MS,
    });
    this.#tokens.set(namespace, Buffer.from(res.sessionToken).toString('ascii'));
    return res;
  }

  logEntries(namespace: string, from: bigint, signal: AbortSignal): AsyncIterable<WireFrame> {
    return this.#channel.serverStream(replicationLog.logEntries, { nextOffset: from, walFlavor: WalFlavor.Sqlite }, this.#sessionMetadata(namespace), { signal });
  }

  /** What the primary has from `from` on, in one message (≥ 1024 frames when there are, whole transactions). */
  async batchLogEntries(namespace: string, from: bigint, signal: AbortSignal): Promise<WireFrame[]> {
    const res = await this.#channel.unary(replicationLog.batchLogEntries, { nextOffset: from, walFlavor: WalFlavor.Sqlite }, this.#sessionMetadata(namespace), { signal });
    return res.frames;
  }

  snapshot(namespace: string, from: bigint, signal: AbortSignal): AsyncIterable<WireFrame> {
    return this.#channel.serverStream(replicationLog.snapshot, { nextOffset: from }, this.#sessionMetadata(namespace), { signal });
  }

  /** One primary connection (a `Proxy.StreamExec` stream) for one client connection of the replica. */
  streamExec(namespace: string, creds: ForwardCredentials, signal: AbortSignal): BidiCall<ExecReq, ExecResp> {
    const md = this.#metadata(namespace, { 'x-proxy-authorization': creds.proxyAuthorization, authorization: creds.credential });
    return this.#channel.bidi(proxy.streamExec, md, { signal });
  }

  close(): void {
    this.#channel.close();
  }
}
