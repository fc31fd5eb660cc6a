/**
 * HTTP/1.1 and cleartext HTTP/2 (h2c with prior knowledge) on one port, as sqld's admin port serves
 * both: the admin API is plain HTTP/1.1, and sqld's `admin-shell` client speaks gRPC over h2c.
 * Node has no server for both on a plain socket, so the HTTP/1 server's own connection handler is
 * put behind a look at the first bytes: the HTTP/2 connection preface starts with `PRI * HTTP/2.0`,
 * which no HTTP/1 request line does. HTTP/2 connections go to an `http2` server, everything else to
 * the HTTP/1 handler (fastify's, with its timeouts), the peeked bytes handed back first.
 */
import type http from 'node:http';
import http2 from 'node:http2';
import type { Socket } from 'node:net';

const PREFACE_START = Buffer.from('PRI ', 'latin1');
/** A client that sends nothing recognisable in this long is closed (the HTTP/1 server's own header timeout starts after). */
const SNIFF_TIMEOUT_MS = 10_000;

export interface H2cOptions {
  /** Each HTTP/2 stream (the server has no other handler). */
  onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void;
}

/**
 * Makes `h1` (not yet listening) also accept h2c connections. Returns the HTTP/2 server; close()
 * ends its sessions at once (their streams are reset), so that closing `h1` does not wait for them.
 */
export function acceptH2c(h1: http.Server, opts: H2cOptions): { http2: http2.Http2Server; close(): void } {
  const h2 = http2.createServer();
  h2.on('stream', (stream, headers) => {
    stream.on('error', () => undefined); // a reset by the peer: nothing to do
    opts.onStream(stream, headers);
  });
  h2.on('sessionError', () => undefined);
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on('session', (session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
    session.on('error', () => undefined);
  });
  const original = h1.listeners('connection') as ((this: http.Server, socket: Socket) => void)[];
  h1.removeAllListeners('connection');
  h1.on('connection', (socket: Socket) => {
    sniff(socket, (isHttp2, head) => {
      // Back to the front of the socket's buffer: the HTTP/1 parser's first read gets them (emitted
      // on a later tick, after its listeners are in place); an http2 session takes what is buffered
      // when it starts.
      socket.unshift(head);
      if (isHttp2) {
        h2.emit('connection', socket);
        return;
      }
      for (const listener of original) listener.call(h1, socket);
      socket.resume();
    });
  });
  return {
    http2: h2,
    close() {
      for (const session of sessions) session.destroy();
    },
  };
}

/** Reads until the first four bytes decide, then calls `decide` with what was read. */
function sniff(socket: Socket, decide: (isHttp2: boolean, head: Buffer) => void): void {
  const parts: Buffer[] = [];
  let held = 0;
  const timer = setTimeout(() => socket.destroy(), SNIFF_TIMEOUT_MS);
  const done = (): void => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.off('error', onError);
    socket.pause();
    const head = Buffer.concat(parts, held);
    const n = Math.min(head.length, PREFACE_START.length);
    decide(n === PREFACE_START.length && head.subarray(0, n).equals(PREFACE_START), head);
  };
  const onData = (chunk: Buffer): void => {
    parts.push(chunk);
    held += chunk.length;
    const n = Math.min(held, PREFACE_START.length);
    // Decided as soon as the bytes so far cannot start the preface, or match all four.
    const head = Buffer.concat(parts, held).subarray(0, n);
    if (!head.equals(PREFACE_START.subarray(0, n)) || n === PREFACE_START.length) done();
  };
  const onEnd = (): void => done();
  const onError = (): void => {
    clearTimeout(timer);
    socket.destroy();
  };
  socket.on('data', onData);
  socket.once('end', onEnd);
  socket.once('error', onError);
}
