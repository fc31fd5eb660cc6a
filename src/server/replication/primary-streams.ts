/**
 * A replica's connections on its primary: `Proxy.StreamExec` streams (one primary connection each),
 * and a pool of idle ones per caller, so a forwarded autocommit write does not pay for a new
 * stream and a new primary connection every time. A stream goes back to the pool only in
 * autocommit and only if nothing it ran can have left state on its connection (ATTACH, pragmas).
 */
import { errorMessage, guardedInterval, type Logger } from '../../engine/logger.js';
import type { ProgramStep } from '../../engine/program.js';
import { classifyStatement } from '../../engine/sql-split.js';
import { SqlError } from '../../engine/sql-error.js';
import type { ExecReq, ExecResp } from '../../rpc/messages.js';
import { programToProxy, proxyErrorToSqlError, ProgramEventReader, type ProgramReadResult } from '../../rpc/proxy/convert.js';
import { GrpcError, GrpcStatus } from '../../rpc/service.js';
import type { BidiCall } from '../../rpc/transport/grpc-client.js';
import type { ForwardCredentials, PrimaryClient } from './primary-client.js';

export function proxyError(message: string, cause?: unknown): SqlError {
  return new SqlError('PROXY_ERROR', `error executing a request on the primary: ${message}`, { cause });
}

/**
 * grpc-js' wording without the parts that change on every attempt (the time of the last one), so
 * one cause reads the same each time; a hint when the URL is not a gRPC port at all.
 */
export function grpcDetail(message: string): string {
  const m = message
    .replace(/\s*\(\d{4}-\d\d-\d\dT[\d:.]+Z\)/g, '')
    .replace(/\.?\s*Resolution note:\s*$/, '')
    .replace(/\s*\n\s*/g, ' ')
    .trim();
  return /Protocol error/i.test(m) ? `${m} — is --primary-grpc-url the primary's --grpc-listen-addr (a gRPC port)?` : m;
}

export function callFailure(err: unknown): SqlError {
  if (err instanceof SqlError) return err;
  if (err instanceof GrpcError) {
    if (err.status === GrpcStatus.UNAVAILABLE) return proxyError(`the primary is unavailable (${grpcDetail(err.message)})`, err);
    return proxyError(`${GrpcStatus[err.status] ?? err.status}: ${grpcDetail(err.message)}`, err);
  }
  return proxyError(errorMessage(err), err);
}

interface Pending {
  id: number;
  reader: ProgramEventReader;
  resolve(r: ProgramReadResult): void;
  reject(err: Error): void;
}

/** One `Proxy.StreamExec` stream (one connection on the primary): requests in order, one at a time. */
export class PrimaryStream {
  /** When it was last given back to its pool. */
  idleSince = 0;
  readonly #call: BidiCall<ExecReq, ExecResp>;
  readonly #ctl = new AbortController();
  #nextId = 0;
  #pending: Pending | null = null;
  #broken: SqlError | null = null;

  constructor(client: PrimaryClient, namespace: string, creds: ForwardCredentials) {
    this.#call = client.streamExec(namespace, creds, this.#ctl.signal);
    void this.#read();
  }

  get broken(): boolean {
    return this.#broken !== null;
  }

  exec(steps: readonly ProgramStep[], timeoutMs: number): Promise<ProgramReadResult> {
    if (this.#broken) return Promise.reject(this.#broken);
    if (this.#pending) return Promise.reject(new Error('a forwarded request is already running on this connection'));
    const id = this.#nextId++;
    return new Promise<ProgramReadResult>((resolve, reject) => {
      const timer = setTimeout(() => this.#fail(proxyError(`the primary did not answer within ${timeoutMs} ms (whether a write in the request was committed is unknown)`)), timeoutMs);
      this.#pending = {
        id,
        reader: new ProgramEventReader(),
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (err: Error) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      try {
        this.#call.send({ requestId: id, request: { execute: { pgm: programToProxy(steps) } } });
      } catch (err) {
        this.#fail(callFailure(err));
      }
    });
  }

  close(): void {
    if (!this.#broken) this.#broken = proxyError('the connection is closed');
    try {
      this.#call.end();
    } catch {
      // already gone
    }
    this.#ctl.abort();
  }

  async #read(): Promise<void> {
    try {
      for await (const resp of this.#call.responses) this.#onResponse(resp);
      this.#fail(proxyError('the primary closed the stream'));
    } catch (err) {
      this.#fail(callFailure(err));
    }
  }

  #onResponse(resp: ExecResp): void {
    const p = this.#pending;
    if (p === null || resp.requestId !== p.id) return; // an answer to a request given up on
    const body = resp.response;
    try {
      if (body === undefined) throw proxyError('the primary sent an empty response');
      if ('error' in body) {
        this.#pending = null;
        p.reject(proxyErrorToSqlError(body.error));
        return;
      }
      if (!('programResp' in body)) throw proxyError('the primary answered a program with something else');
      const done = p.reader.push(body.programResp.steps);
      if (done) {
        this.#pending = null;
        p.resolve(done);
      }
    } catch (err) {
      this.#fail(callFailure(err));
    }
  }

  #fail(err: SqlError): void {
    this.#broken ??= err;
    const p = this.#pending;
    this.#pending = null;
    p?.reject(err);
    this.#ctl.abort();
  }
}


/** Statements that may leave state on a connection: such a stream is not reused by someone else. */
const TAINTING = new Set(['attach', 'detach', 'pragma', 'other']);

export function taintsConnection(steps: readonly ProgramStep[]): boolean {
  return steps.some((s) => 'sql' in s && TAINTING.has(classifyStatement(s.sql).kind));
}

/** Idle streams kept per caller, and how long one may stay idle. */
const MAX_IDLE_PER_CALLER = 8;
const IDLE_MS = 30_000;

export class PrimaryStreamPool {
  readonly #idle = new Map<string, PrimaryStream[]>();
  readonly #sweep: NodeJS.Timeout;

  constructor(
    private readonly client: PrimaryClient,
    private readonly namespace: string,
    logger: Logger,
  ) {
    this.#sweep = guardedInterval(logger, 'closing idle primary streams', IDLE_MS / 3, () => this.#closeIdle(performance.now() - IDLE_MS));
  }

  take(creds: ForwardCredentials): PrimaryStream {
    const idle = this.#idle.get(keyOf(creds));
    for (let s = idle?.pop(); s !== undefined; s = idle?.pop()) {
      if (!s.broken) return s;
      s.close();
    }
    return new PrimaryStream(this.client, this.namespace, creds);
  }

  give(creds: ForwardCredentials, stream: PrimaryStream): void {
    const key = keyOf(creds);
    const idle = this.#idle.get(key) ?? [];
    if (stream.broken || idle.length >= MAX_IDLE_PER_CALLER) {
      stream.close();
      return;
    }
    stream.idleSince = performance.now();
    idle.push(stream);
    this.#idle.set(key, idle);
  }

  close(): void {
    clearInterval(this.#sweep);
    this.#closeIdle(Infinity);
  }

  #closeIdle(before: number): void {
    for (const [key, streams] of this.#idle) {
      const keep = streams.filter((s) => {
        if (!s.broken && s.idleSince > before) return true;
        s.close();
        return false;
      });
      if (keep.length === 0) this.#idle.delete(key);
      else this.#idle.set(key, keep);
    }
  }
}

function keyOf(creds: ForwardCredentials): string {
  return `${creds.proxyAuthorization}\n${creds.credential ?? ''}`;
}
