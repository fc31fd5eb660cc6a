import { WebSocket, type RawData } from 'ws';
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
import { WsStreams, type WsResponse } from './ws-streams.js';

/** WebSocket close codes used by sqld's Hrana server. */
export const CloseCode = {
  normal: 1000,
  goingAway: 1001,
  unsupported: 1003,
  invalid: 1007,
  policy: 1008,
  error: 1011,
} as const;

/** A close reason must fit in 123 bytes of UTF-8. */
function closeReason(text: string): string {
  if (Buffer.byteLength(text) <= 123) return text;
  let out = text.slice(0, 120);
  while (Buffer.byteLength(out) > 120) out = out.slice(0, -1);
  return `${out}...`;
}

function asBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** Errors that end the connection, with the close code and reason they map to. */
function closeFor(err: unknown): { code: number; reason: string } {
  if (err instanceof WsDecodeError) return { code: CloseCode.invalid, reason: err.message };
  if (err instanceof ProtocolError) return { code: CloseCode.policy, reason: err.message };
  // sqld drops the TCP connection here; a 1011 close is as fatal for clients and says why.
  if (err instanceof ForbiddenError || err instanceof ThrottledError) return { code: CloseCode.error, reason: err.message };
  return { code: CloseCode.error, reason: 'Internal server error' };
}

/**
 * One Hrana-over-WebSocket connection (spec §5.4): `hello` first, then requests. Messages are taken
 * in arrival order on one chain (a `hello` is fully handled before the next message), while the
 * requests themselves run on their streams' queues and answer in completion order.
 */
export class WsSession {
  private principal: Principal | null = null;
  private auth: CallerAuth | null = null;
  private streams: WsStreams | null = null;
  private intake: Promise<void> = Promise.resolve();
  private ended = false;
  private killTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly ws: WebSocket,
    private readonly ctx: ServerContext,
    readonly version: HranaVersion,
    private readonly namespace: string,
    private readonly codec: WsCodec,
  ) {
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    ws.on('close', () => this.cleanup());
    // ws closes the socket itself on frame-level errors (oversized or invalid UTF-8 messages).
    ws.on('error', () => this.cleanup());
  }

  /** Server shutdown: close with 1001 and drop the socket if the peer does not answer soon. */
  shutdown(): void {
    this.end(CloseCode.goingAway, 'The server is shutting down');
    this.killTimer ??= setTimeout(() => this.ws.terminate(), 1000);
    this.killTimer.unref();
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.ended) return;
    this.ctx.touch();
    if (isBinary !== this.codec.binaryFrames) {
      this.end(CloseCode.unsupported, this.codec.wrongFrameReason);
      return;
    }
    const frame = asBuffer(data);
    this.intake = this.intake.then(async () => {
      if (this.ended) return;
      try {
        await this.handle(this.codec.decode(frame));
      } catch (err) {
        this.fail(err);
      }
    });
  }

  private async handle(msg: ClientMsg): Promise<void> {
    if (msg.type === 'hello') {
      await this.hello(msg.jwt);
      return;
    }
    if (!this.auth || !this.streams) throw new ProtocolError('Received a request before hello message');
    this.request(msg.request_id, msg.request, this.streams, this.auth);
  }

  private async hello(jwt: string | null): Promise<void> {
    if (this.principal && this.version < 2) {
      throw new ProtocolError('Repeated hello message is only supported in protocol version hrana2 and higher');
    }
    // A missing namespace is a server error (1011), not an authentication failure; its database is
    // opened only once the caller is authenticated.
    await checkNamespaceExists(this.ctx, this.namespace);
    let principal: Principal;
    try {
      principal = await this.ctx.auth.authenticateHello(jwt);
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
    this.streams ??= new WsStreams(this.ctx, this.version, this.namespace, db);
    this.send({ type: 'hello_ok' });
  }

  private request(requestId: number, req: WsRequest, streams: WsStreams, auth: CallerAuth): void {
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
    this.ws.send(payload, () => release());
  }

  private send(msg: WsServerMsg): void {
    if (this.ended || this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(this.codec.encode(msg));
  }

  private fail(err: unknown): void {
    const { code, reason } = closeFor(err);
    this.end(code, reason);
  }

  /** Closes the WebSocket with a close frame and releases everything the connection holds. */
  private end(code: number, reason: string): void {
    if (this.ended) return;
    this.ended = true;
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(code, closeReason(reason));
    this.cleanup();
  }

  private cleanup(): void {
    this.ended = true;
    const streams = this.streams;
    this.streams = null;
    streams?.closeAll();
    if (this.ws.readyState === WebSocket.CLOSED && this.killTimer) clearTimeout(this.killTimer);
  }
}
