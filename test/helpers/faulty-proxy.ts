import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * An HTTP proxy in front of an S3 endpoint that can be told to misbehave: answer the next requests
 * with an error status, drop their connections, hold every request for a while before passing it
 * on, or be down altogether. For the faults a real store cannot be asked for ("S3 answers 500", "S3
 * is slow", "S3 is gone for a while").
 */
export interface FaultyProxy {
  /** `http://127.0.0.1:<port>`: give this to the S3 client instead of the target. */
  readonly endpoint: string;
  /** Requests received so far (faulty or not). */
  readonly requests: number;
  /** Requests passed on to the target so far. */
  readonly forwarded: number;
  /** Connections reset while down. */
  readonly refused: number;
  /** The next `n` requests get `status` (default 500, S3 code InternalError) without reaching the target. */
  failNext(n: number, status?: number): void;
  /** The next `n` requests have their connection destroyed without an answer. */
  dropNext(n: number): void;
  /** Every request from now on waits `ms` before it is passed on (0: none). */
  setDelay(ms: number): void;
  /**
   * The store is gone: every open connection (idle or mid-request) is destroyed, and so is every new
   * one as soon as it is accepted, until `up()`. Nothing reaches the target meanwhile.
   */
  down(): void;
  up(): void;
  /** Back to a plain proxy (and up). */
  reset(): void;
  close(): Promise<void>;
}

const ERROR_CODES: Record<number, string> = { 500: 'InternalError', 503: 'SlowDown', 403: 'AccessDenied' };

/** Starts a proxy on 127.0.0.1 and a free port that forwards to `target` (`http://host:port`). */
export async function startFaultyProxy(target: string): Promise<FaultyProxy> {
  const upstream = new URL(target);
  let requests = 0;
  let failures: { left: number; status: number } = { left: 0, status: 500 };
  let drops = 0;
  let delayMs = 0;
  let forwarded = 0;
  let refused = 0;
  let isDown = false;
  const timers = new Set<NodeJS.Timeout>();
  const sockets = new Set<Socket>();

  const forward = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (isDown) {
      req.socket.destroy();
      return;
    }
    forwarded++;
    const headers = { ...req.headers };
    delete headers.expect; // answered here already; SigV4 never signs it
    const up = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  };

  const server = http.createServer((req, res) => {
    requests++;
    // A client that gives up (timeout) resets the connection: not an error of the proxy.
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    if (drops > 0) {
      drops--;
      req.socket.destroy();
      return;
    }
    if (failures.left > 0) {
      failures = { ...failures, left: failures.left - 1 };
      const { status } = failures;
      req.resume();
      req.once('end', () => {
        const code = ERROR_CODES[status] ?? 'InternalError';
        const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>injected by the test proxy</Message></Error>`;
        res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
        res.end(req.method === 'HEAD' ? undefined : body);
      });
      return;
    }
    if (delayMs > 0) {
      req.pause();
      const timer = setTimeout(() => {
        timers.delete(timer);
        forward(req, res);
      }, delayMs);
      timers.add(timer);
      return;
    }
    forward(req, res);
  });

  server.on('connection', (socket: Socket) => {
    if (isDown) {
      refused++;
      socket.destroy();
      return;
    }
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    get requests() {
      return requests;
    },
    get forwarded() {
      return forwarded;
    },
    get refused() {
      return refused;
    },
    failNext(n, status = 500) {
      failures = { left: n, status };
    },
    dropNext(n) {
      drops = n;
    },
    setDelay(ms) {
      delayMs = ms;
    },
    down() {
      isDown = true;
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    },
    up() {
      isDown = false;
    },
    reset() {
      failures = { left: 0, status: 500 };
      drops = 0;
      delayMs = 0;
      isDown = false;
    },
    async close() {
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
