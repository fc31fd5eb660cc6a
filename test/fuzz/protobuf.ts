/**
 * A tiny protobuf writer for the fuzz suites, independent of the server's codec: it encodes the
 * JSON-shaped messages the generators produce (test/fuzz/arbitraries.ts) after the schemas of
 * spec Appendix B (Hrana HTTP and WebSocket) and proto/proxy.proto, replication_log.proto. A field
 * whose value has the wrong JSON type is written anyway, with the wire type of the value it holds
 * (a string where a varint belongs, a message where a string belongs), so wrong types in the JSON
 * shapes become wrong wire types in the bytes.
 */
type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function varint(value: bigint): Buffer {
  const out: number[] = [];
  let v = BigInt.asUintN(64, value);
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Buffer.from(out);
}

const tag = (field: number, wireType: number): Buffer => varint(BigInt(field * 8 + wireType));
const delimited = (field: number, body: Buffer): Buffer => Buffer.concat([tag(field, 2), varint(BigInt(body.length)), body]);
const varintField = (field: number, value: bigint): Buffer => Buffer.concat([tag(field, 0), varint(value)]);

function fixed64(field: number, value: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(value);
  return Buffer.concat([tag(field, 1), b]);
}

/** A JS integer or decimal string as a bigint (null when it is neither). */
function asBig(v: unknown): bigint | null {
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (typeof v === 'string' && /^-?\d{1,30}$/.test(v)) return BigInt(v);
  return null;
}

/** A value of the wrong type, with the wire type its JS type suggests. */
function natural(field: number, v: unknown): Buffer {
  if (typeof v === 'string') return delimited(field, Buffer.from(v, 'utf8'));
  if (typeof v === 'boolean') return varintField(field, v ? 1n : 0n);
  if (typeof v === 'number') return Number.isInteger(v) && Math.abs(v) < 2 ** 63 ? varintField(field, BigInt(v)) : fixed64(field, v);
  if (Array.isArray(v)) return Buffer.concat(v.map((x) => natural(field, x)));
  return delimited(field, Buffer.alloc(0));
}

/** How a field is written: a scalar kind, or a nested message encoder. */
type Kind = 'string' | 'int' | 'sint' | 'bool' | 'double' | 'bytes' | 'base64' | ((v: Obj) => Buffer);

function field(no: number, kind: Kind, v: unknown): Buffer {
  if (v === undefined || v === null) return Buffer.alloc(0);
  if (typeof kind === 'function') return isObj(v) ? delimited(no, kind(v)) : natural(no, v);
  switch (kind) {
    case 'string':
      return typeof v === 'string' ? delimited(no, Buffer.from(v, 'utf8')) : natural(no, v);
    case 'int': {
      const n = asBig(v);
      return n === null ? natural(no, v) : varintField(no, n);
    }
    case 'sint': {
      const n = asBig(v);
      return n === null ? natural(no, v) : varintField(no, n >= 0n ? n << 1n : (-n << 1n) - 1n);
    }
    case 'bool':
      return typeof v === 'boolean' ? varintField(no, v ? 1n : 0n) : natural(no, v);
    case 'double':
      return typeof v === 'number' ? fixed64(no, v) : natural(no, v);
    case 'bytes':
      return v instanceof Uint8Array ? delimited(no, Buffer.from(v)) : natural(no, v);
    case 'base64':
      return typeof v === 'string' ? delimited(no, Buffer.from(v, 'base64')) : natural(no, v);
  }
}

const repeated = (no: number, kind: Kind, v: unknown): Buffer => (Array.isArray(v) ? Buffer.concat(v.map((x) => field(no, kind, x))) : field(no, kind, v));

/** A message from a JSON object: `schema` maps keys to [field number, kind, repeated?]. */
function message(schema: Record<string, [number, Kind, 'repeated'?]>): (v: Obj) => Buffer {
  return (v) => Buffer.concat(Object.entries(schema).map(([key, [no, kind, rep]]) => (rep ? repeated(no, kind, v[key]) : field(no, kind, v[key]))));
}

/** A oneof selected by the JSON `type`; an unknown type is an empty message. */
function oneof(cases: Record<string, [number, Kind]>, typeKey = 'type'): (v: Obj) => Buffer {
  return (v) => {
    const c = typeof v[typeKey] === 'string' ? cases[v[typeKey]] : undefined;
    return c === undefined ? Buffer.alloc(0) : field(c[0], c[1], v);
  };
}

const empty = (): Buffer => Buffer.alloc(0);

// ---- package hrana (spec B.1) ----

const value = (v: Obj): Buffer => {
  switch (v.type) {
    case 'null':
      return delimited(1, Buffer.alloc(0));
    case 'integer':
      return field(2, 'sint', v.value);
    case 'float':
      return field(3, 'double', v.value);
    case 'text':
      return field(4, 'string', v.value);
    case 'blob':
      return field(5, 'base64', v.base64);
    default:
      return Buffer.alloc(0);
  }
};
const stmt = message({
  sql: [1, 'string'],
  sql_id: [2, 'int'],
  args: [3, value, 'repeated'],
  named_args: [4, message({ name: [1, 'string'], value: [2, value] }), 'repeated'],
  want_rows: [5, 'bool'],
  replication_index: [6, 'int'],
});
const cond = (c: Obj): Buffer => {
  switch (c.type) {
    case 'ok':
      return field(1, 'int', c.step);
    case 'error':
      return field(2, 'int', c.step);
    case 'not':
      return field(3, cond, c.cond);
    case 'and':
    case 'or':
      return delimited(c.type === 'and' ? 4 : 5, repeated(1, cond, c.conds));
    case 'is_autocommit':
      return delimited(6, Buffer.alloc(0));
    default:
      return Buffer.alloc(0);
  }
};
const batch = message({ steps: [1, message({ condition: [1, cond], stmt: [2, stmt] }), 'repeated'], replication_index: [2, 'int'] });

// ---- package hrana.http (spec B.3) ----

const sqlReq = message({ sql: [1, 'string'], sql_id: [2, 'int'], replication_index: [3, 'int'] });
const streamRequest = oneof({
  close: [1, empty],
  execute: [2, message({ stmt: [1, stmt] })],
  batch: [3, message({ batch: [1, batch] })],
  sequence: [4, sqlReq],
  describe: [5, sqlReq],
  store_sql: [6, message({ sql_id: [1, 'int'], sql: [2, 'string'] })],
  close_sql: [7, message({ sql_id: [1, 'int'] })],
  get_autocommit: [8, empty],
});

export const encodePipelineReq = message({ baton: [1, 'string'], requests: [2, streamRequest, 'repeated'] });
export const encodeCursorReq = message({ baton: [1, 'string'], batch: [2, batch] });

// ---- package hrana.ws (spec B.2) ----

const wsSqlReq = message({ stream_id: [1, 'int'], sql: [2, 'string'], sql_id: [3, 'int'], replication_index: [4, 'int'] });
const wsRequest = oneof({
  open_stream: [2, message({ stream_id: [1, 'int'] })],
  close_stream: [3, message({ stream_id: [1, 'int'] })],
  execute: [4, message({ stream_id: [1, 'int'], stmt: [2, stmt], replication_index: [3, 'int'] })],
  batch: [5, message({ stream_id: [1, 'int'], batch: [2, batch] })],
  open_cursor: [6, message({ stream_id: [1, 'int'], cursor_id: [2, 'int'], batch: [3, batch] })],
  close_cursor: [7, message({ cursor_id: [1, 'int'] })],
  fetch_cursor: [8, message({ cursor_id: [1, 'int'], max_count: [2, 'int'] })],
  sequence: [9, wsSqlReq],
  describe: [10, wsSqlReq],
  store_sql: [11, message({ sql_id: [1, 'int'], sql: [2, 'string'] })],
  close_sql: [12, message({ sql_id: [1, 'int'] })],
  get_autocommit: [13, message({ stream_id: [1, 'int'] })],
});

/** `hrana.ws.ClientMsg` from the JSON form (`{"type":"hello",...}` / `{"type":"request",...}`). */
export const encodeWsClientMsg = (msg: unknown): Buffer =>
  !isObj(msg)
    ? natural(3, msg)
    : msg.type === 'hello'
    ? field(1, message({ jwt: [1, 'string'] }), msg)
    : msg.type === 'request'
      ? delimited(2, Buffer.concat([field(1, 'int', msg.request_id), isObj(msg.request) ? wsRequest(msg.request) : natural(2, msg.request)]))
      : Buffer.alloc(0);

// ---- packages proxy and wal_log (proto/proxy.proto, proto/replication_log.proto) ----

/** bincode of a SQL value (spec §6.7), from a Hrana JSON value. */
function bincode(v: Obj): Buffer {
  const head = (variant: number, rest: Buffer): Buffer => Buffer.concat([Buffer.from([variant, 0, 0, 0]), rest]);
  const withLength = (b: Buffer): Buffer => {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(b.length));
    return Buffer.concat([len, b]);
  };
  const i64 = asBig(v.value);
  if (v.type === 'integer' && i64 !== null) {
    const b = Buffer.alloc(8);
    b.writeBigInt64LE(BigInt.asIntN(64, i64));
    return head(1, b);
  }
  if (v.type === 'float' && typeof v.value === 'number') {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(v.value);
    return head(2, b);
  }
  if (v.type === 'text' && typeof v.value === 'string') return head(3, withLength(Buffer.from(v.value, 'utf8')));
  if (v.type === 'blob' && typeof v.base64 === 'string') return head(4, withLength(Buffer.from(v.base64, 'base64')));
  return head(v.type === 'null' ? 0 : 9, Buffer.alloc(0));
}

const proxyValue = (v: Obj): Buffer => delimited(1, bincode(v));
const proxyCond = (c: Obj): Buffer => {
  const step = message({ step: [1, 'int'] });
  switch (c.type) {
    case 'ok':
      return field(1, step, c);
    case 'error':
      return field(2, step, c);
    case 'not':
      return field(3, message({ cond: [1, proxyCond] }), c);
    case 'and':
    case 'or':
      return field(c.type === 'and' ? 4 : 5, message({ conds: [1, proxyCond, 'repeated'] }), c);
    case 'is_autocommit':
      return delimited(6, Buffer.alloc(0));
    default:
      return Buffer.alloc(0);
  }
};
/** A Hrana stmt as a proxy `Query` (positional or named parameters). */
const query = (s: Obj): Buffer => {
  const named = Array.isArray(s.named_args) && s.named_args.length > 0;
  const params = named
    ? field(3, message({ names: [1, 'string', 'repeated'], values: [2, proxyValue, 'repeated'] }), { names: (s.named_args as Obj[]).map((a) => (isObj(a) ? a.name : a)), values: (s.named_args as Obj[]).map((a) => (isObj(a) ? a.value : a)) })
    : field(2, message({ values: [1, proxyValue, 'repeated'] }), { values: s.args ?? [] });
  return Buffer.concat([field(1, 'string', s.sql), params, field(4, 'bool', s.want_rows === false)]);
};

/** `proxy.ProgramReq` from a client id and a Hrana batch (its steps become the program). */
export const encodeProgramReq = message({ client_id: [1, 'string'], batch: [2, message({ steps: [1, message({ condition: [1, proxyCond], stmt: [2, query] }), 'repeated'] })] });
export const encodeDescribeReq = message({ client_id: [1, 'string'], sql: [2, 'string'] });
export const encodeDisconnect = message({ client_id: [1, 'string'] });
export const encodeHelloReq = message({ handshake_version: [1, 'int'] });
export const encodeLogOffset = message({ next_offset: [1, 'int'], wal_flavor: [2, 'int'] });

/** One gRPC-web data frame around `payload`. */
export function grpcWebFrame(payload: Buffer, flag = 0): Buffer {
  const head = Buffer.alloc(5);
  head[0] = flag;
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** The trailer of a gRPC-web answer (`grpc-status`, `grpc-message`), or null if there is none. */
export function grpcWebTrailer(body: Buffer): { status: number; message: string } | null {
  for (let pos = 0; pos + 5 <= body.length; ) {
    const flag = body[pos]!;
    const len = body.readUInt32BE(pos + 1);
    const payload = body.subarray(pos + 5, pos + 5 + len);
    pos += 5 + len;
    if ((flag & 0x80) === 0) continue;
    const lines = new Map(payload.toString('utf8').split('\r\n').map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()] as const));
    const message = lines.get('grpc-message') ?? '';
    let text = message;
    try {
      text = decodeURIComponent(message);
    } catch {
      // not percent-encoded after all: keep it as it came
    }
    return { status: Number(lines.get('grpc-status')), message: text };
  }
  return null;
}
