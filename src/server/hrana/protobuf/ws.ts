import { emptyBatch, emptyStmt, readBatch, readStmt, writeCursorEntry, writeError, writeStreamResponseBody } from './shared.js';
import type { JsonObject, WsResponse, WsServerMsg } from './shapes.js';
import { ProtoReader, ProtoWriter } from './wire.js';

/**
 * Package `hrana.ws` (spec Appendix B.2), subprotocol `hrana3-protobuf`: a ClientMsg decodes into
 * the JSON shape of the `hrana3` text message (protobuf defaults filled in: absent integers are 0),
 * so the same message checks apply; a ServerMsg is encoded from the JSON shape the session sends.
 */

/** Request kinds by RequestMsg / ResponseOkMsg field number. */
const REQUEST_FIELDS = [
  'open_stream',
  'close_stream',
  'execute',
  'batch',
  'open_cursor',
  'close_cursor',
  'fetch_cursor',
  'sequence',
  'describe',
  'store_sql',
  'close_sql',
  'get_autocommit',
] as const;
type RequestKind = (typeof REQUEST_FIELDS)[number];

/** Per request kind: field number → [key, reader] (keys absent from the bytes get defaults). */
type FieldSpec = Record<number, readonly [string, (r: ProtoReader) => unknown]>;
const streamId = ['stream_id', (r: ProtoReader) => r.int32()] as const;
const sqlId = ['sql_id', (r: ProtoReader) => r.int32()] as const;
const cursorId = ['cursor_id', (r: ProtoReader) => r.int32()] as const;
const stmt = ['stmt', (r: ProtoReader) => readStmt(r.message())] as const;
const batch = ['batch', (r: ProtoReader) => readBatch(r.message())] as const;
const sql = ['sql', (r: ProtoReader) => r.string()] as const;
const replicationIndex = ['replication_index', (r: ProtoReader) => r.uint64().toString()] as const;

const REQUESTS: Record<RequestKind, { fields: FieldSpec; defaults: () => JsonObject }> = {
  open_stream: { fields: { 1: streamId }, defaults: () => ({ stream_id: 0 }) },
  close_stream: { fields: { 1: streamId }, defaults: () => ({ stream_id: 0 }) },
  execute: { fields: { 1: streamId, 2: stmt, 3: replicationIndex }, defaults: () => ({ stream_id: 0, stmt: emptyStmt() }) },
  batch: { fields: { 1: streamId, 2: batch }, defaults: () => ({ stream_id: 0, batch: emptyBatch() }) },
  open_cursor: { fields: { 1: streamId, 2: cursorId, 3: batch }, defaults: () => ({ stream_id: 0, cursor_id: 0, batch: emptyBatch() }) },
  close_cursor: { fields: { 1: cursorId }, defaults: () => ({ cursor_id: 0 }) },
  fetch_cursor: { fields: { 1: cursorId, 2: ['max_count', (r) => r.uint32()] }, defaults: () => ({ cursor_id: 0, max_count: 0 }) },
  sequence: { fields: { 1: streamId, 2: sql, 3: sqlId, 4: replicationIndex }, defaults: () => ({ stream_id: 0 }) },
  describe: { fields: { 1: streamId, 2: sql, 3: sqlId, 4: replicationIndex }, defaults: () => ({ stream_id: 0 }) },
  store_sql: { fields: { 1: sqlId, 2: sql }, defaults: () => ({ sql_id: 0, sql: '' }) },
  close_sql: { fields: { 1: sqlId }, defaults: () => ({ sql_id: 0 }) },
  get_autocommit: { fields: { 1: streamId }, defaults: () => ({ stream_id: 0 }) },
};

function readRequest(r: ProtoReader, type: RequestKind): JsonObject {
  const spec = REQUESTS[type];
  const req: JsonObject = { type, ...spec.defaults() };
  while (r.more()) {
    const field = spec.fields[r.field()];
    if (field) req[field[0]] = field[1](r);
    else r.skip();
  }
  return req;
}

function readRequestMsg(r: ProtoReader): JsonObject {
  let requestId = 0;
  let request: JsonObject = {};
  while (r.more()) {
    const field = r.field();
    const kind = REQUEST_FIELDS[field - 2];
    if (field === 1) requestId = r.int32();
    else if (kind !== undefined) request = readRequest(r.message(), kind);
    else r.skip();
  }
  return { type: 'request', request_id: requestId, request };
}

function readHello(r: ProtoReader): JsonObject {
  let jwt: string | null = null;
  while (r.more()) {
    if (r.field() === 1) jwt = r.string();
    else r.skip();
  }
  return { type: 'hello', jwt };
}

/** A ClientMsg as its JSON shape; without a known message kind it is `{}`. */
export function decodeWsClientMsg(data: Uint8Array): JsonObject {
  const r = new ProtoReader(data);
  let msg: JsonObject = {};
  while (r.more()) {
    switch (r.field()) {
      case 1:
        msg = readHello(r.message());
        break;
      case 2:
        msg = readRequestMsg(r.message());
        break;
      default:
        r.skip();
    }
  }
  return msg;
}

function writeResponse(w: ProtoWriter, res: WsResponse): void {
  const field = REQUEST_FIELDS.indexOf(res.type) + 2;
  switch (res.type) {
    case 'fetch_cursor':
      w.begin(field);
      for (const entry of res.entries) writeCursorEntry(w, 1, entry);
      if (res.done) w.bool(2, true);
      w.end();
      return;
    case 'open_stream':
    case 'close_stream':
    case 'open_cursor':
    case 'close_cursor':
      w.empty(field);
      return;
    default:
      writeStreamResponseBody(w, field, res);
  }
}

export function encodeWsServerMsg(msg: WsServerMsg): Buffer {
  const w = new ProtoWriter(msg.type === 'response_ok' ? 1024 : 128);
  switch (msg.type) {
    case 'hello_ok':
      w.empty(1);
      break;
    case 'hello_error':
      w.begin(2);
      writeError(w, 1, msg.error);
      w.end();
      break;
    case 'response_ok':
      w.begin(3);
      if (msg.request_id !== 0) w.int32(1, msg.request_id);
      writeResponse(w, msg.response);
      w.end();
      break;
    case 'response_error':
      w.begin(4);
      if (msg.request_id !== 0) w.int32(1, msg.request_id);
      writeError(w, 2, msg.error);
      w.end();
      break;
  }
  return w.finish();
}
