/**
 * One GET over plain HTTP read straight into the caller's buffers (a BodyReader), for the
 * snapshot of a restore. A restore on a small machine is bound by CPU, and node:http hands a
 * 100 MB body over in 1 600 new 64 KiB buffers, each through the parser, a Readable and a copy.
 * Here the connection is our own, and net's `onread` puts each socket read into the free part of
 * the buffer the pending read() fills; a 64 KiB spill buffer takes the answer's head and whatever
 * arrives while no read() is waiting (reading pauses then).
 *
 * Only what this path is sure of is read here: a `200` answer (`206` for a range) framed by Content-Length. Anything
 * else (another status, chunked, no length, a head over 64 KiB, a connection that fails before the
 * head) settles as null, and the caller asks again through node:http, which has the retries and the
 * error answers. After the head, a failure is the body's: the read rejects.
 */
import net from 'node:net';
import type { BodyReader } from './body-reader.js';
import { S3RequestError } from './s3-errors.js';

export interface DirectGet {
  host: string;
  port: number;
  /** Request target: path and query, encoded. */
  path: string;
  /** The request's headers, signed (host among them). */
  headers: Readonly<Record<string, string>>;
  /** The status taken here: 200, or 206 for a range (with its Content-Range). */
  status: 200 | 206;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  signal?: AbortSignal;
}

export interface DirectAnswer {
  /** Lower-case names. */
  headers: Record<string, string>;
  body: BodyReader;
}

const SPILL_BYTES = 64 * 1024;
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');

/** The answer to `req`, or null where node:http should ask instead (see the module comment). */
export function directGet(req: DirectGet): Promise<DirectAnswer | null> {
  return new DirectBody(req).head;
}

class DirectBody implements BodyReader {
  readonly head: Promise<DirectAnswer | null>;
  private settleHead!: (a: DirectAnswer | null) => void;
  private headDone = false;
  private readonly socket: net.Socket;
  private readonly spill = Buffer.allocUnsafeSlow(SPILL_BYTES);
  private spillStart = 0;
  private spillEnd = 0;
  /** Where the socket's next read lands (what nextBuffer handed out last). */
  private into: 'spill' | 'target' = 'spill';
  private target: Buffer | null = null;
  private filled = 0;
  /** Body bytes not yet received. */
  private remaining = 0;
  private ended = false;
  private failure: Error | null = null;
  private waiter: { resolve: (n: number) => void; reject: (e: Error) => void } | null = null;
  private readonly connectTimer: NodeJS.Timeout;

  constructor(private readonly req: DirectGet) {
    this.head = new Promise((resolve) => (this.settleHead = resolve));
    this.socket = net.connect({
      host: req.host,
      port: req.port,
      onread: { buffer: () => this.nextBuffer(), callback: (n: number) => this.onRead(n) },
    });
    this.connectTimer = setTimeout(() => this.fail(new S3RequestError('TimeoutError', undefined, `could not connect to ${req.host}:${req.port} within ${req.connectTimeoutMs} ms`)), req.connectTimeoutMs);
    this.socket.once('connect', () => {
      clearTimeout(this.connectTimer);
      const lines = [`GET ${req.path} HTTP/1.1`, ...Object.entries(req.headers).map(([k, v]) => `${k}: ${v}`), 'connection: close', '', ''];
      this.socket.write(lines.join('\r\n'));
    });
    this.socket.setTimeout(req.idleTimeoutMs, () => this.fail(new S3RequestError('TimeoutError', undefined, `no traffic for ${req.idleTimeoutMs} ms from ${req.host}:${req.port}`)));
    this.socket.on('error', (err: NodeJS.ErrnoException) => this.fail(new S3RequestError(err.code ?? err.name, undefined, err.message, { cause: err })));
    this.socket.on('end', () => this.fail(new S3RequestError('ECONNRESET', undefined, 'the answer ended early')));
    this.socket.on('close', () => clearTimeout(this.connectTimer));
    const signal = req.signal;
    if (signal !== undefined) {
      const onAbort = (): void => {
        this.fail(new S3RequestError('AbortError', undefined, 'the read was aborted'));
      };
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        this.socket.once('close', () => signal.removeEventListener('abort', onAbort));
      }
    }
  }

  read(into: Buffer): Promise<number> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.waiter !== null) return Promise.reject(new Error('one read at a time'));
    this.target = into;
    this.filled = 0;
    this.drain();
    if (this.filled === into.length || (this.ended && this.spillStart === this.spillEnd)) return Promise.resolve(this.take());
    return new Promise<number>((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.socket.resume();
    });
  }

  destroy(): void {
    this.socket.destroy();
    if (!this.ended) this.fail(new S3RequestError('AbortError', undefined, 'the read was stopped'));
  }

  /** onread's buffer: the free part of the pending read's buffer, else the spill's. */
  private nextBuffer(): Uint8Array {
    if (this.headDone && this.target !== null && this.spillStart === this.spillEnd && this.filled < this.target.length && this.remaining > 0) {
      this.into = 'target';
      return this.target.subarray(this.filled, this.filled + Math.min(this.target.length - this.filled, this.remaining));
    }
    if (this.spillStart > 0) {
      this.spill.copyWithin(0, this.spillStart, this.spillEnd);
      this.spillEnd -= this.spillStart;
      this.spillStart = 0;
    }
    this.into = 'spill';
    // Never empty: reading pauses before the spill can fill (see onRead), and a head that fills it fails.
    return this.spill.subarray(this.spillEnd);
  }

  /** onread's callback; false pauses reading (until read() asks for more). */
  private onRead(n: number): boolean {
    if (this.into === 'target') {
      this.filled += n;
      this.remaining -= n;
    } else {
      this.spillEnd += n;
      if (!this.headDone) {
        if (!this.parseHead()) return this.spillEnd < SPILL_BYTES || this.settleNull();
      } else {
        this.remaining -= n;
      }
      if (this.remaining < 0) return this.fail(new S3RequestError('ProtocolError', 200, 'the answer is longer than its Content-Length'));
      if (this.target !== null) this.drain();
    }
    if (this.remaining === 0 && !this.ended) {
      this.ended = true;
      this.socket.destroy(); // the whole body is in: the connection has nothing more to give
    }
    if (this.target !== null && (this.filled === this.target.length || (this.ended && this.spillStart === this.spillEnd))) {
      const w = this.waiter;
      this.waiter = null;
      const got = this.take();
      w?.resolve(got);
    }
    return this.target !== null;
  }

  /** Reads the head once it is complete in the spill; false while it is not. */
  private parseHead(): boolean {
    const end = this.spill.subarray(0, this.spillEnd).indexOf(HEAD_END);
    if (end < 0) return false;
    const lines = this.spill.toString('latin1', 0, end).split('\r\n');
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon <= 0) return this.settleNull();
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    const length = headers['content-length'];
    if (status?.[1] !== String(this.req.status) || headers['transfer-encoding'] !== undefined || length === undefined || !/^\d{1,15}$/.test(length)) return this.settleNull();
    if (this.req.status === 206 && headers['content-range'] === undefined) return this.settleNull();
    this.headDone = true;
    this.spillStart = end + HEAD_END.length;
    this.remaining = Number(length) - (this.spillEnd - this.spillStart);
    this.settleHead({ headers, body: this });
    return true;
  }

  /** Hands the spill's bytes to the pending read. */
  private drain(): void {
    const target = this.target!;
    const k = Math.min(this.spillEnd - this.spillStart, target.length - this.filled);
    if (k <= 0) return;
    this.spill.copy(target, this.filled, this.spillStart, this.spillStart + k);
    this.filled += k;
    this.spillStart += k;
  }

  private take(): number {
    const n = this.filled;
    this.target = null;
    this.filled = 0;
    return n;
  }

  /** Before the head: null (node:http asks again). */
  private settleNull(): false {
    this.headDone = true;
    this.ended = true;
    this.socket.destroy();
    this.settleHead(null);
    return false;
  }

  private fail(err: Error): false {
    if (!this.headDone) return this.settleNull();
    if (this.ended || this.failure !== null) return false;
    this.failure = err;
    this.socket.destroy();
    const w = this.waiter;
    this.waiter = null;
    w?.reject(err);
    return false;
  }
}
