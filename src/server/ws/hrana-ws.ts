import { STATUS_CODES, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { ServerContext } from '../context.js';
import { isOverShare } from '../http/connection-guard.js';
import type { HranaVersion } from '../hrana/protocol.js';
import { namespaceFromHeaders } from '../session.js';
import { jsonCodec, protobufCodec, type WsCodec } from './ws-codec.js';
import { WsSession } from './ws-session.js';

/** Largest client message accepted once `hello` arrived (bigger ones close the connection with 1009); see ws-limits.ts for before. */
const MAX_PAYLOAD = 64 * 1024 * 1024;

interface Subprotocol {
  name: string | null;
  version: HranaVersion;
  codec: WsCodec;
}

/** The subprotocols this server speaks, in its order of preference (sqld's). */
const SUBPROTOCOLS: readonly (Subprotocol & { name: string })[] = [
  { name: 'hrana3-protobuf', version: 3, codec: protobufCodec },
  { name: 'hrana3', version: 3, codec: jsonCodec },
  { name: 'hrana2', version: 2, codec: jsonCodec },
  { name: 'hrana1', version: 1, codec: jsonCodec },
];

const UNSUPPORTED_SUBPROTOCOL = 'Only these WebSocket subprotocols are supported: hrana3-protobuf hrana3 hrana2 hrana1';
const UPGRADE_FAILED = 'sqld was not able to process the HTTP upgrade';
const TOO_MANY_CONNECTIONS = 'too many connections from this address';

/**
 * Picks by the server's preference (case-insensitive). `undefined` (no header) means hrana1; null
 * means nothing acceptable was offered.
 */
export function chooseSubprotocol(offered: Iterable<string> | undefined): Subprotocol | null {
  if (offered === undefined) return { name: null, version: 1, codec: jsonCodec };
  const names = [...offered].map((p) => p.trim().toLowerCase());
  for (const sub of SUBPROTOCOLS) if (names.includes(sub.name)) return sub;
  return null;
}

function offeredSubprotocols(req: IncomingMessage): string[] | undefined {
  const header = req.headers['sec-websocket-protocol'];
  return header === undefined ? undefined : header.split(',');
}

function pathOf(url: string | undefined): string {
  const raw = url ?? '/';
  const q = raw.indexOf('?');
  return q < 0 ? raw : raw.slice(0, q);
}

/** Answers an upgrade request with a plain HTTP response and closes the socket. */
function refuse(socket: Duplex, status: number, body: string, extraHeaders: string[] = []): void {
  const head = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`,
    'connection: close',
    ...extraHeaders,
    'content-type: text/plain; charset=utf-8',
    `content-length: ${Buffer.byteLength(body)}`,
  ];
  socket.once('finish', () => socket.destroy());
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
}

/**
 * Hrana over WebSocket on the user port (spec §5): `GET /` with upgrade headers. The namespace is
 * fixed from the upgrade request's headers; authentication happens in the `hello` message.
 */
export interface HranaWsOptions {
  /** The user port serves the upgrade on `/` only; the dedicated `--hrana-listen-addr` on any path. */
  anyPath: boolean;
  /** `server` header of the 101 answer: `sqld-hrana-upgrade` (user port) or `sqld-hrana-tcp`. */
  serverHeader: string;
}

export function attachHranaWebSocket(server: Server, ctx: ServerContext, opts: HranaWsOptions = { anyPath: false, serverHeader: 'sqld-hrana-upgrade' }): { close(): void } {
  const sessions = new Set<WsSession>();
  let closing = false;

  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_PAYLOAD,
    perMessageDeflate: false,
    handleProtocols: (protocols) => chooseSubprotocol(protocols)?.name ?? false,
  });
  wss.on('headers', (headers) => headers.push(`server: ${opts.serverHeader}`));

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => socket.destroy());
    ctx.touch();
    if (isOverShare(req.socket)) {
      refuse(socket, 503, TOO_MANY_CONNECTIONS, ['retry-after: 1']);
      return;
    }
    if (!opts.anyPath && pathOf(req.url) !== '/') {
      refuse(socket, 404, '');
      return;
    }
    const sub = chooseSubprotocol(offeredSubprotocols(req));
    if (!sub) {
      refuse(socket, 400, UNSUPPORTED_SUBPROTOCOL, [`server: ${opts.serverHeader}`]);
      return;
    }
    let namespace: string;
    try {
      namespace = namespaceFromHeaders(ctx, req.headers);
    } catch {
      refuse(socket, 503, UPGRADE_FAILED);
      return;
    }
    if (closing || !ctx.isReady()) {
      refuse(socket, 503, UPGRADE_FAILED);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const session = new WsSession(ws, socket, ctx, sub.version, namespace, sub.codec);
      if (closing) {
        session.shutdown();
        return;
      }
      sessions.add(session);
      ws.on('close', () => sessions.delete(session));
    });
  };
  server.on('upgrade', onUpgrade);

  return {
    close() {
      if (closing) return;
      closing = true;
      for (const session of sessions) session.shutdown();
      sessions.clear();
      wss.close();
    },
  };
}
