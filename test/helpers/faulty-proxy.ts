import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An HTTP proxy in front of an S3 endpoint that can be told to misbehave: answer the next requests
 * with an error status, drop their connections, or hold every request for a while before passing it
 * on. For the faults a real store cannot be asked for ("S3 answers 500", "S3 is slow").
 */
export interface FaultyProxy {
  /** `http://127.0.0.1:<port>`: give this to the S3 client instead of the target. */
  readonly endpoint: string;
  /** Requests received so far (faulty or not). */
  readonly requests: number;
  /** The next `n` requests get `status` (default 500, S3 code InternalError) without reaching the target. */
  failNext(n: number, status?: number): void;
  /** The next `n` requests have their connection destroyed without an answer. */
  dropNext(n: number): void;
  /** Every request from now on waits `ms` before it is passed on (0: none). */
  setDelay(ms: number): void;
  /** Back to a plain proxy. */
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
  const timers = new Set<NodeJS.Timeout>();

  const forward = (req: http.IncomingMessage, res: http.ServerResponse): void => {
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
    failNext(n, status = 500) {
      failures = { left: n, status };
    },
    dropNext(n) {
      drops = n;
    },
    setDelay(ms) {
      delayMs = ms;
    },
    reset() {
      failures = { left: 0, status: 500 };
      drops = 0;
      delayMs = 0;
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
