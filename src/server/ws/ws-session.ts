import type { Duplex } from 'node:stream';
import { WebSocket, type RawData } from 'ws';
import { NotFoundError } from '../../errors.js';
import { guardedTimeout } from '../../engine/logger.js';
import { ForbiddenError } from '../../engine/sql-error.js';
import type { NamespaceDb } from '../../engine/namespace-db.js';
import { AuthError } from '../auth/auth-error.js';
import { checkNamespaceExists, type CallerAuth } from '../session.js';
import type { Principal } from '../auth/permissions.js';
import type { ServerContext } from '../context.js';
import { asStatementError, ProtocolError } from '../hrana/errors.js';
import type { HranaVersion } from '../hrana/protocol.js';
import { ThrottledError } from '../admission.js';
import type { WsServerMsg } from '../hrana/protobuf/shapes.js';
import type { WsCodec } from './ws-codec.js';
import { WsDecodeError, type ClientMsg, type WsRequest } from './ws-messages.js';
import { expiredError, isExpired, tokenExpiry } from './ws-expiry.js';
import { wsLimits, type WsLimits } from './ws-limits.js';
import { SendWindow } from './ws-send-window.js';
import { WsStreams, type WsResponse } from './ws-streams.js';

/** WebSocket close codes used by sqld's Hrana server. */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  unsupported: 1003,
  invalid: 1007,
  policy: 1008,
  tooBig: 1009,
  error: 1011,
} as const;

/** A close reason must fit in 123 bytes of UTF-8. */
function closeReason(text: string): string {
  if (Buffer.byteLength(text) <= 123) return text;
  let out = text.slice(0, 120);
  while (Buffer.byteLength(out) > 120) out = out.slice(0, -1);
  return `${out}...`;
}

/** Requests that only give something back: an expired session may still send them. */
const RELEASES: ReadonlySet<WsRequest['type']> = new Set(['close_stream', 'close_cursor', 'close_sql']);

function asBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** Errors that end the connection, with the close code and reason they map to. */
function closeFor(err: unknown): { code: number; reason: string } {
  if (err instanceof WsDecodeError) return { code: CloseCode.invalid, reason: err.message };
  if (err instanceof ProtocolError) return { code: CloseCode.policy, reason: err.message };
  // sqld drops the TCP connection here; a 1011 close is as fatal for clients and says why (a
  // principal that may not read the namespace is told that it does not exist, as over HTTP).
  if (err instanceof ForbiddenError || err instanceof ThrottledError || err instanceof NotFoundError) return { code: CloseCode.error, reason: err.message };
  return { code: CloseCode.error, reason: 'Internal server error' };
}

/**
 * One Hrana-over-WebSocket connection (spec §5.4): `hello` first, then requests. Messages are taken
 * in arrival order from an inbox (a `hello` is fully handled before the next message), while the
 * requests themselves run on their streams' queues and answer in completion order.
 *
 * Flow control: whenever the intake has to wait (a `hello` being checked, a stream with
 * `streamQueue` jobs, or more than `sendWindowBytes` of answers not yet written out) the socket is
 * paused, so TCP pushes back on the client instead of the server buffering its requests or
 * answers. A connection has `helloTimeoutMs` to send its `hello` and may send at most
 * `preHelloBytes` before it; each session request re-checks the token's `exp` (see ws-expiry.ts).
 */
export class WsSession {
  private principal: Principal | null = null;
  private auth: CallerAuth | null = null;
  private streams: WsStreams | null = null;
  /** Keeps the session's namespace loaded while the session lives (its streams use that database). */
  private releaseNamespace: (() => void) | null = null;
  /** The socket is corked until the end of this turn (write()). */
  private corked = false;
  /** `exp` of the session's token (seconds), null when it has none. */
  private expiresAt: number | null = null;
  private readonly limits: WsLimits = wsLimits();
  private readonly window = new SendWindow(this.limits.sendWindowBytes);
  private readonly inbox: Buffer[] = [];
  private pumping = false;
  private helloArrived = false;
  private preHelloBytes = 0;
  private helloTimer: NodeJS.Timeout | null;
  private ended = false;
  private killTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly ws: WebSocket,
    private readonly socket: Duplex,
    private readonly ctx: ServerContext,
    readonly version: HranaVersion,
    private readonly namespace: string,
    private readonly codec: WsCodec,
  ) {
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    ws.on('close', () => this.cleanup());
    // ws closes the socket itself on frame-level errors (oversized or invalid UTF-8 messages).
    ws.on('error', () => this.cleanup());
    // Counts what arrives before the hello message, before ws has buffered a whole (large) frame.
    socket.on('data', this.countPreHello);
    const helloTimeoutMs = this.limits.helloTimeoutMs ?? ctx.config.connections.wsHelloTimeoutMs;
    this.helloTimer = guardedTimeout(ctx.logger, 'WebSocket hello timeout', helloTimeoutMs, () => {
      this.refused('no hello message in time', { timeoutMs: helloTimeoutMs });
      this.end(CloseCode.policy, 'Timed out waiting for the hello message');
    });
  }

  /** Server shutdown: close with 1001 and drop the socket if the peer does not answer soon. */
  shutdown(): void {
    this.end(CloseCode.goingAway, 'The server is shutting down');
    this.dropSoon();
  }

  private readonly countPreHello = (chunk: Buffer): void => {
    if (this.helloArrived || this.ended) return;
    this.preHelloBytes += chunk.length;
    if (this.preHelloBytes <= this.limits.preHelloBytes) return;
    this.refused('too much data before the hello message', { bytes: this.preHelloBytes, limit: this.limits.preHelloBytes });
    this.end(CloseCode.tooBig, 'Too much data before the hello message');
    // Read no more of it: the peer gets the close frame, then the socket goes.
    this.ws.pause();
    this.dropSoon();
  };

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.ended) return;
    this.ctx.touch();
    if (!this.helloArrived) {
      this.helloArrived = true;
      this.stopHelloWatch();
    }
    if (isBinary !== this.codec.binaryFrames) {
      this.end(CloseCode.unsupported, this.codec.wrongFrameReason);
      return;
    }
    this.inbox.push(asBuffer(data));
    if (!this.pumping) void this.pump();
  }

  /** Handles the inbox in order; pauses the socket while a message has to wait. */
  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      for (let frame = this.inbox.shift(); frame !== undefined && !this.ended; frame = this.inbox.shift()) {
        const wait = this.handle(this.codec.decode(frame));
        if (wait) {
          this.ws.pause();
          await wait;
        }
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.pumping = false;
      if (!this.ended && this.ws.isPaused) this.ws.resume();
    }
  }

  /** Handles one message; returns a promise when the intake must wait for it. */
  private handle(msg: ClientMsg): Promise<void> | null {
    if (msg.type === 'hello') return this.hello(msg.jwt);
    if (!this.auth || !this.streams) throw new ProtocolError('Received a request before hello message');
    return this.request(msg.request_id, msg.request);
  }

  private async hello(jwt: string | null): Promise<void> {
    if (this.principal && this.version < 2) {
      throw new ProtocolError('Repeated hello message is only supported in protocol version hrana2 and higher');
    }
    // A missing namespace is a server error (1011 with sqld's reason), not an authentication
    // failure; its database is opened only once the caller is authenticated.
    try {
      await checkNamespaceExists(this.ctx, this.namespace);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      this.end(CloseCode.error, 'Internal server error');
      return;
    }
    const auth = await this.ctx.auth.forNamespace(this.namespace);
    let principal: Principal;
    try {
      principal = await auth.strategy.authenticateHello(jwt);
    } catch (err) {
      if (!(err instanceof AuthError)) throw err;
      this.send({ type: 'hello_error', error: { message: `Authentication failed: ${err.message}`, code: err.code } });
      this.end(CloseCode.normal, 'Thank you for using sqld');
      return;
    }
    const db: NamespaceDb = await this.ctx.namespaces.get(this.namespace);
    if (this.ended) return;
    this.principal = principal;
    this.auth = { principal, credential: jwt === null ? undefined : `Bearer ${jwt}` };
    this.expiresAt = tokenExpiry(auth.config, jwt);
    this.releaseNamespace ??= db.hold();
    this.streams ??= new WsStreams(this.ctx, this.version, this.namespace, db, this.limits, () => this.window.wait());
    this.send({ type: 'hello_ok' });
  }

  /** Starts a request once its stream has room and the send window is open; null if started now. */
  private request(requestId: number, req: WsRequest): Promise<void> | null {
    const streams = this.streams;
    const auth = this.auth;
    if (this.ended || !streams || !auth) return null;
    const blocked = this.window.wait() ?? streams.roomFor(req);
    if (blocked) return blocked.then(() => this.request(requestId, req) ?? undefined);
    if (!RELEASES.has(req.type) && isExpired(this.expiresAt, wsLimits().now())) {
      this.refused('the JWT has expired', { request: req.type, exp: this.expiresAt });
      this.send({ type: 'response_error', request_id: requestId, error: expiredError() });
      return null;
    }
    // The async wrapper runs dispatch synchronously (state changes in arrival order) and turns a
    // synchronous throw into a rejection.
    const pending = (async (): Promise<WsResponse> => streams.dispatch(req, auth))();
    pending.then(
      (response) => this.respond(requestId, response),
      (err: unknown) => {
        if (this.ended) return;
        const error = asStatementError(err);
        if (error) this.send({ type: 'response_error', request_id: requestId, error });
        else this.fail(err);
      },
    );
    return null;
  }

  /** Sends a response, counted against `--max-total-response-size` until it has been written. */
  private respond(requestId: number, response: WsResponse): void {
    if (this.ended) return;
    const payload = this.codec.encode({ type: 'response_ok', request_id: requestId, response });
    let release: () => void;
    try {
      release = this.ctx.responses.reserve(payload.length);
    } catch (err) {
      const error = asStatementError(err);
      if (!error) throw err;
      this.send({ type: 'response_error', request_id: requestId, error });
      return;
    }
    this.write(payload, release);
  }

  private send(msg: WsServerMsg): void {
    if (this.ended || this.ws.readyState !== WebSocket.OPEN) return;
    this.write(this.codec.encode(msg));
  }

  /**
   * Writes a message, counted in the send window until the socket took it. Answers that complete
   * in the same turn of the event loop (requests that arrived together) leave in one write: the
   * socket is corked at the first and uncorked once the turn's callbacks and promises have run, so
   * a burst of answers costs one system call instead of one each.
   */
  private write(payload: Buffer, release?: () => void): void {
    const sent = this.window.add(payload.length);
    if (!this.corked && !this.socket.destroyed) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    // A text codec's bytes go out as a text frame: ws takes the buffer as it is.
    this.ws.send(payload, { binary: this.codec.binaryFrames }, () => {
      release?.();
      sent();
    });
  }

  private refused(reason: string, details: Record<string, unknown>): void {
    this.ctx.logger.debug({ namespace: this.namespace, ...details }, `WebSocket refused: ${reason}`);
  }

  private fail(err: unknown): void {
    const { code, reason } = closeFor(err);
    this.end(code, reason);
  }

  /**
   * Closes the WebSocket with a close frame and releases everything the connection holds. Reading
   * resumes, so the peer's close frame completes the handshake.
   */
  private end(code: number, reason: string): void {
    if (this.ended) return;
    this.ended = true;
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(code, closeReason(reason));
    if (this.ws.isPaused) this.ws.resume();
    this.cleanup();
  }

  /** Terminates the socket unless the peer completed the close handshake by then. */
  private dropSoon(): void {
    this.killTimer ??= setTimeout(() => this.ws.terminate(), this.limits.dropAfterMs);
    this.killTimer.unref();
  }

  private stopHelloWatch(): void {
    this.socket.off('data', this.countPreHello);
    if (this.helloTimer) clearTimeout(this.helloTimer);
    this.helloTimer = null;
  }

  private cleanup(): void {
    this.ended = true;
    this.stopHelloWatch();
    this.window.close();
    const streams = this.streams;
    this.streams = null;
    streams?.closeAll();
    this.releaseNamespace?.();
    if (this.ws.readyState === WebSocket.CLOSED && this.killTimer) clearTimeout(this.killTimer);
  }
}
