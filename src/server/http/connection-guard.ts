import http from 'node:http';
import type { Socket } from 'node:net';
import type { ConnectionLimits } from '../../config/connection-limits.js';
import type { Logger } from '../../engine/logger.js';

/** How often Node checks the headers and request timeouts (its default, 30 s, would overshoot them). */
const CHECK_INTERVAL_MAX_MS = 1000;
/** Time a connection over its address's share gets to send the request that is answered 503. */
const OVER_SHARE_GRACE_MS = 2000;
/** At most one warning per this long about connections refused. */
const WARN_EVERY_MS = 30_000;

const overShare = new WeakSet<Socket>();

/** A user-port `http.Server` with the limits' timeouts (fastify's serverFactory). */
export function createLimitedHttpServer(limits: ConnectionLimits, handler: http.RequestListener): http.Server {
  return http.createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      connectionsCheckingInterval: Math.min(CHECK_INTERVAL_MAX_MS, Math.max(100, Math.floor(limits.headersTimeoutMs / 4))),
    },
    handler,
  );
}

/** True for a connection beyond its remote address's share: its request gets 503 and the connection closes. */
export function isOverShare(socket: Socket): boolean {
  return overShare.has(socket);
}

/**
 * Counts the connections of every listener that serves users (the user port, the WebSocket-only
 * Hrana port). Beyond `maxConnections` a new connection is closed at once: the descriptors it would
 * hold are the databases'. Beyond `maxConnectionsPerAddress`, one address's new connections are
 * marked: their request is answered 503 and the connection closed, so one client cannot hold every
 * slot while the others get none. Idle connections go by the timeouts, so a slot must be used to be kept.
 */
export class ConnectionGuard {
  private total = 0;
  private readonly perAddress = new Map<string, number>();
  private lastWarning = Number.NEGATIVE_INFINITY;
  private refused = 0;

  constructor(
    private readonly limits: ConnectionLimits,
    private readonly logger: Logger,
  ) {}

  get open(): number {
    return this.total;
  }

  /** Applies the limits to `server` (after Node's own connection handling is in place). */
  watch(server: http.Server): void {
    server.setTimeout(this.limits.idleTimeoutMs);
    server.on('connection', (socket: Socket) => this.admit(socket));
  }

  private admit(socket: Socket): void {
    if (this.total >= this.limits.maxConnections) {
      this.refuse(`the server holds ${this.total} connections (--max-connections ${this.limits.maxConnections})`);
      socket.destroy();
      return;
    }
    const address = socket.remoteAddress ?? '';
    const mine = (this.perAddress.get(address) ?? 0) + 1;
    this.total += 1;
    this.perAddress.set(address, mine);
    socket.once('close', () => {
      this.total -= 1;
      const left = (this.perAddress.get(address) ?? 1) - 1;
      if (left === 0) this.perAddress.delete(address);
      else this.perAddress.set(address, left);
    });
    if (mine > this.limits.maxConnectionsPerAddress) {
      this.refuse(`${address} holds ${mine - 1} connections (--max-connections-per-address ${this.limits.maxConnectionsPerAddress})`);
      overShare.add(socket);
      socket.setTimeout(OVER_SHARE_GRACE_MS);
    }
  }

  private refuse(why: string): void {
    this.refused += 1;
    this.logger.debug(`connection refused: ${why}`);
    const now = Date.now();
    if (now - this.lastWarning < WARN_EVERY_MS) return;
    this.lastWarning = now;
    this.logger.warn(`connections refused (${this.refused} so far): ${why}`);
  }
}
