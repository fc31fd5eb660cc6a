/**
 * A client of the admin shell service (sqld's `admin-shell`, spec §10), for the tests: sqld's own
 * client is a Rust binary that cannot run here, so this one speaks the same gRPC over h2c: one
 * bidirectional stream, `Query` messages out, `Response` messages in, decoded with our
 * proto/admin_shell.proto.
 */
import http2 from 'node:http2';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const root = protobuf.loadSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '../../proto/admin_shell.proto'));
const Query = root.lookupType('admin_shell.Query');
const Response = root.lookupType('admin_shell.Response');

export type ShellValue = null | bigint | number | string | Buffer;
export type ShellAnswer = { rows: ShellValue[][] } | { error: string };

export interface ShellSession {
  /** Sends one query and waits for its response. */
  query(sql: string): Promise<ShellAnswer>;
  /** Half-closes the stream and waits for the status (grpc-status and grpc-message). */
  end(): Promise<{ status: number; message: string | undefined }>;
  close(): void;
}

interface DecodedValue {
  null?: object;
  real?: number;
  integer?: string;
  text?: string;
  blob?: Buffer;
}

function value(v: DecodedValue): ShellValue {
  if (v.integer !== undefined) return BigInt(v.integer);
  if (v.real !== undefined) return v.real;
  if (v.text !== undefined) return v.text;
  if (v.blob !== undefined) return Buffer.from(v.blob);
  return null;
}

/** Opens a Shell stream on `adminUrl` (`http://host:port`). */
export function openShell(adminUrl: string, opts: { namespace?: string; auth?: string } = {}): Promise<ShellSession & { headers: http2.IncomingHttpHeaders }> {
  const client = http2.connect(adminUrl);
  client.on('error', () => undefined);
  const headers: http2.OutgoingHttpHeaders = { ':method': 'POST', ':path': '/admin_shell.AdminShellService/Shell', 'content-type': 'application/grpc', te: 'trailers' };
  if (opts.namespace !== undefined) headers['x-namespace-bin'] = Buffer.from(opts.namespace).toString('base64');
  if (opts.auth !== undefined) headers.authorization = `basic ${opts.auth}`;
  const stream = client.request(headers);
  stream.on('error', () => undefined);
  const waiting: ((a: ShellAnswer) => void)[] = [];
  let pending = Buffer.alloc(0);
  let status: { status: number; message: string | undefined } | null = null;
  const statusWaiters: ((s: { status: number; message: string | undefined }) => void)[] = [];
  const setStatus = (h: http2.IncomingHttpHeaders): void => {
    if (h['grpc-status'] === undefined || status !== null) return;
    const message = h['grpc-message'];
    status = { status: Number(h['grpc-status']), message: typeof message === 'string' ? decodeURIComponent(message) : undefined };
    for (const w of statusWaiters.splice(0)) w(status);
  };
  stream.on('trailers', setStatus);
  stream.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 5 && pending.length >= 5 + pending.readUInt32BE(1)) {
      const body = pending.subarray(5, 5 + pending.readUInt32BE(1));
      pending = pending.subarray(5 + body.length);
      const msg = Response.toObject(Response.decode(body), { longs: String, bytes: Buffer, oneofs: true }) as {
        rows?: { rows?: { values?: DecodedValue[] }[] };
        error?: { Error?: string };
      };
      const answer: ShellAnswer = msg.error !== undefined ? { error: msg.error.Error ?? '' } : { rows: (msg.rows?.rows ?? []).map((r) => (r.values ?? []).map(value)) };
      waiting.shift()?.(answer);
    }
  });
  stream.on('close', () => {
    if (status === null) setStatus({ 'grpc-status': String(stream.rstCode ?? 2) });
  });
  return new Promise((resolve, reject) => {
    stream.once('response', (h) => {
      setStatus(h);
      resolve({
        headers: h,
        query(sql) {
          return new Promise((res) => {
            waiting.push(res);
            const payload = Query.encode(Query.fromObject({ query: sql })).finish();
            const head = Buffer.alloc(5);
            head.writeUInt32BE(payload.length, 1);
            stream.write(Buffer.concat([head, payload]));
          });
        },
        end() {
          // A stream the server already ended (a trailers-only refusal) is not half-closed again:
          // Node's client can spin on end() + close() of such a stream in the same tick.
          if (status !== null) return Promise.resolve(status);
          stream.end();
          return new Promise((res) => statusWaiters.push(res));
        },
        close() {
          if (!stream.closed) stream.close();
          client.close();
        },
      });
    });
    stream.once('error', reject);
  });
}
