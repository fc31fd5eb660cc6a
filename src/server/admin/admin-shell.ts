/**
 * sqld's admin shell service (spec sqld-wire.md §10) on the admin port: gRPC over h2c,
 * `/admin_shell.AdminShellService/Shell`, a bidirectional stream of `Query` → `Response`. Each query
 * runs on one connection of the namespace named by the `x-namespace-bin` metadata, kept for the
 * stream (so `BEGIN` … `COMMIT` across queries works) and closed when it ends. As in sqld there is no
 * authorisation beyond the admin key, but the statement still runs through the engine: its write
 * lock and frame capture, and the statements a client may never run (pragmas that would break
 * capture, ATTACH) are refused with their error text in the response.
 *
 * Written by hand over node:http2 (h2c-sniff.ts hands the streams over): gRPC's framing is five
 * bytes per message, the messages come from our proto/admin_shell.proto through protobufjs.
 */
import type http2 from 'node:http2';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import type { ExecOptions } from '../../engine/connection.js';
import type { ExecResult, SqlArgs, SqlValue } from '../../engine/values.js';
import { GrpcStatus } from '../../rpc/service.js';
import { percentEncodeGrpcMessage } from '../../rpc/grpc-web/framing.js';

export const SHELL_PATH = '/admin_shell.AdminShellService/Shell';
/** Largest query message accepted (a pasted script). */
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/** A connection of the namespace, as the shell needs it. */
export interface ShellConnection {
  execute(sql: string, args: SqlArgs, opts: ExecOptions): Promise<ExecResult>;
  close(): void;
}

export interface AdminShellDeps {
  /** A new connection to the namespace; rejects when it does not exist or cannot be opened. */
  connect(namespace: string): Promise<ShellConnection>;
  /** The admin key check (`authorization: Basic <key>`), as on every admin route. */
  authorized(authorization: string | undefined): boolean;
  /** Rows one response may carry (`--max-response-size`). */
  maxResponseBytes: number;
}

const NO_ARGS: SqlArgs = { positional: [], named: new Map() };

let codecs: { Query: protobuf.Type; Response: protobuf.Type } | null = null;

function messages(): { Query: protobuf.Type; Response: protobuf.Type } {
  if (codecs === null) {
    const file = fileURLToPath(new URL('../../../proto/admin_shell.proto', import.meta.url));
    const root = protobuf.loadSync(path.normalize(file));
    codecs = { Query: root.lookupType('admin_shell.Query'), Response: root.lookupType('admin_shell.Response') };
  }
  return codecs;
}

function protoValue(v: SqlValue): Record<string, unknown> {
  if (v === null) return { null: {} };
  if (typeof v === 'bigint') return { integer: v.toString() };
  if (typeof v === 'number') return { real: v };
  if (typeof v === 'string') return { text: v };
  return { blob: v };
}

/** One Response message: the rows of a result, or an error's text. */
export function encodeShellResponse(outcome: { rows: readonly (readonly SqlValue[])[] } | { error: string }): Uint8Array {
  const { Response } = messages();
  const body = 'error' in outcome ? { error: { Error: outcome.error } } : { rows: { rows: outcome.rows.map((r) => ({ values: r.map(protoValue) })) } };
  return Response.encode(Response.fromObject(body)).finish();
}

export function decodeShellQuery(bytes: Uint8Array): string {
  const { Query } = messages();
  const msg = Query.toObject(Query.decode(bytes), { defaults: true }) as { query: string };
  return msg.query;
}

function frame(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + payload.length);
  out[0] = 0;
  out.writeUInt32BE(payload.length, 1);
  out.set(payload, 5);
  return out;
}

/** Ends the stream with a gRPC status: in the trailers, or trailers-only before any response. */
function finish(stream: http2.ServerHttp2Stream, status: GrpcStatus, message?: string): void {
  if (stream.destroyed || stream.closed) return;
  const trailers: http2.OutgoingHttpHeaders = { 'grpc-status': String(status) };
  if (message !== undefined) trailers['grpc-message'] = percentEncodeGrpcMessage(message);
  if (!stream.headersSent) {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', ...trailers }, { endStream: true });
    return;
  }
  // Opened with waitForTrailers: they go out once the data is flushed.
  stream.once('wantTrailers', () => stream.sendTrailers(trailers));
  stream.end();
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Serves one HTTP/2 stream of the admin port. */
export function handleAdminShellStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, deps: AdminShellDeps): void {
  if (headers[':path'] !== SHELL_PATH || headers[':method'] !== 'POST') {
    finish(stream, GrpcStatus.UNIMPLEMENTED, `unknown method ${String(headers[':path'])}`);
    return;
  }
  if (!String(headers['content-type'] ?? '').startsWith('application/grpc')) {
    stream.respond({ ':status': 415 }, { endStream: true });
    return;
  }
  if (!deps.authorized(firstHeader(headers.authorization))) {
    finish(stream, GrpcStatus.UNAUTHENTICATED, 'Unauthorized');
    return;
  }
  const encoded = firstHeader(headers['x-namespace-bin']);
  if (encoded === undefined || encoded === '') {
    finish(stream, GrpcStatus.INVALID_ARGUMENT, 'missing namespace');
    return;
  }
  const namespace = Buffer.from(encoded, 'base64').toString('utf8');
  void serve(stream, namespace, deps);
}

async function serve(stream: http2.ServerHttp2Stream, namespace: string, deps: AdminShellDeps): Promise<void> {
  let conn: ShellConnection;
  try {
    conn = await deps.connect(namespace);
  } catch (err) {
    finish(stream, GrpcStatus.FAILED_PRECONDITION, err instanceof Error ? err.message : String(err));
    return;
  }
  let closed = false;
  const release = (): void => {
    if (closed) return;
    closed = true;
    conn.close();
  };
  stream.on('close', release);
  stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
  let pending: Buffer = Buffer.alloc(0);
  let queue: Promise<void> = Promise.resolve();
  const run = async (query: string): Promise<void> => {
    if (closed) return;
    let payload: Uint8Array;
    try {
      const result = await conn.execute(query, NO_ARGS, { allowWrite: true, maxResponseBytes: deps.maxResponseBytes });
      payload = encodeShellResponse({ rows: result.rows });
    } catch (err) {
      payload = encodeShellResponse({ error: err instanceof Error ? err.message : String(err) });
    }
    if (!closed && !stream.destroyed) stream.write(frame(payload));
  };
  stream.on('data', (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 5) {
      const compressed = pending[0] !== 0;
      const length = pending.readUInt32BE(1);
      if (compressed || length > MAX_MESSAGE_BYTES) {
        finish(stream, GrpcStatus.INTERNAL, compressed ? 'compressed messages are not supported' : `a message of ${length} bytes is too large`);
        release();
        return;
      }
      if (pending.length < 5 + length) break;
      const body = pending.subarray(5, 5 + length);
      pending = pending.subarray(5 + length);
      let query: string;
      try {
        query = decodeShellQuery(body);
      } catch (err) {
        finish(stream, GrpcStatus.INTERNAL, `not a Query message: ${(err as Error).message}`);
        release();
        return;
      }
      queue = queue.then(() => run(query));
    }
  });
  stream.on('end', () => {
    void queue.then(() => {
      finish(stream, GrpcStatus.OK);
      release();
    });
  });
}
