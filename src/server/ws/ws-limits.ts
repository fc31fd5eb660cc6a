/**
 * Limits that keep one Hrana WebSocket connection from holding more than its share of the server
 * (memory, response budget, connection slots). Only the hello timeout has a flag; tests change them through
 * `overrideWsLimits`, which a session reads when it starts (`now` on every use).
 */
export interface WsLimits {
  /** Requests queued or running on one stream; beyond it the server stops reading the socket (sqld: 8). */
  streamQueue: number;
  /** Response bytes handed to the socket but not yet written out; beyond it no new work starts. */
  sendWindowBytes: number;
  /** Streams open or opening on one connection; one more `open_stream` is answered with an error. */
  maxStreams: number;
  /** Stream ids one connection may hold, refused ones included; beyond it the connection closes. */
  maxStreamIds: number;
  /** How long a new connection has to complete its `hello`; null: `--ws-hello-timeout-s`. */
  helloTimeoutMs: number | null;
  /** Bytes a client may send before its `hello` message arrived (the hello itself included). */
  preHelloBytes: number;
  /** Grace for the peer's close frame after the server closed a connection it stopped reading. */
  dropAfterMs: number;
  /** Clock (ms since the epoch) against which a session's JWT `exp` is checked. */
  now: () => number;
}

const DEFAULTS: WsLimits = {
  streamQueue: 8,
  sendWindowBytes: 1024 * 1024,
  maxStreams: 32,
  maxStreamIds: 256,
  helloTimeoutMs: null,
  preHelloBytes: 256 * 1024,
  dropAfterMs: 1000,
  now: () => Date.now(),
};

let current: WsLimits = { ...DEFAULTS };

/** The limits new sessions start with. */
export function wsLimits(): WsLimits {
  return current;
}

/** Test seam: replaces some limits until the returned function is called. */
export function overrideWsLimits(changes: Partial<WsLimits>): () => void {
  const before = current;
  current = { ...current, ...changes };
  return () => {
    current = before;
  };
}
