import type { CursorEntry, HranaErrorBody } from '../protocol.js';
import { emptyBatch, emptyStmt, readBatch, readStmt, writeCursorEntry, writeError, writeErrorFields, writeStreamResponseBody } from './shared.js';
import type { CursorRespBody, HttpStreamResponse, JsonObject, PipelineRespBody } from './shapes.js';
import { ProtoReader, ProtoWriter } from './wire.js';

/**
 * Package `hrana.http` (spec Appendix B.3): `/v3-protobuf/pipeline` and `/v3-protobuf/cursor`
 * bodies. Requests decode into the JSON shapes the JSON routes parse; an absent or unknown request
 * kind decodes as `{}` (the pipeline then reports an unknown request type).
 */

/** `sql` / `sql_id` / `replication_index` of SequenceStreamReq and DescribeStreamReq. */
function readSqlReq(r: ProtoReader, type: 'sequence' | 'describe'): JsonObject {
  const req: JsonObject = { type };
  while (r.more()) {
    switch (r.field()) {
      case 1:
        req.sql = r.string();
        break;
      case 2:
        req.sql_id = r.int32();
        break;
      case 3:
        req.replication_index = r.uint64().toString();
        break;
      default:
        r.skip();
    }
  }
  return req;
}

/** The one field of ExecuteStreamReq / BatchStreamReq / CloseSqlStreamReq, or a default. */
function readOnly<T>(r: ProtoReader, read: (r: ProtoReader) => T, fallback: T): T {
  let value = fallback;
  while (r.more()) {
    if (r.field() === 1) value = read(r);
    else r.skip();
  }
  return value;
}

function readStoreSql(r: ProtoReader): JsonObject {
  let sqlId = 0;
  let sql = '';
  while (r.more()) {
    switch (r.field()) {
      case 1:
        sqlId = r.int32();
        break;
      case 2:
        sql = r.string();
        break;
      default:
        r.skip();
    }
  }
  return { type: 'store_sql', sql_id: sqlId, sql };
}

function readStreamRequest(r: ProtoReader): JsonObject {
  let req: JsonObject = {};
  while (r.more()) {
    switch (r.field()) {
      case 1:
        r.skip();
        req = { type: 'close' };
        break;
      case 2:
        req = { type: 'execute', stmt: readOnly(r.message(), (m) => readStmt(m.message()), emptyStmt()) };
        break;
      case 3:
        req = { type: 'batch', batch: readOnly(r.message(), (m) => readBatch(m.message()), emptyBatch()) };
        break;
      case 4:
        req = readSqlReq(r.message(), 'sequence');
        break;
      case 5:
        req = readSqlReq(r.message(), 'describe');
        break;
      case 6:
        req = readStoreSql(r.message());
        break;
      case 7:
        req = { type: 'close_sql', sql_id: readOnly(r.message(), (m) => m.int32(), 0) };
        break;
      case 8:
        r.skip();
        req = { type: 'get_autocommit' };
        break;
      default:
        r.skip();
    }
  }
  return req;
}

export function decodePipelineReqBody(data: Uint8Array): { baton: string | null; requests: JsonObject[] } {
  const r = new ProtoReader(data);
  let baton: string | null = null;
  const requests: JsonObject[] = [];
  while (r.more()) {
    switch (r.field()) {
      case 1:
        baton = r.string();
        break;
      case 2:
        requests.push(readStreamRequest(r.message()));
        break;
      default:
        r.skip();
    }
  }
  return { baton, requests };
}

export function decodeCursorReqBody(data: Uint8Array): { baton: string | null; batch: JsonObject } {
  const r = new ProtoReader(data);
  let baton: string | null = null;
  let batch = emptyBatch();
  while (r.more()) {
    switch (r.field()) {
      case 1:
        baton = r.string();
        break;
      case 2:
        batch = readBatch(r.message());
        break;
      default:
        r.skip();
    }
  }
  return { baton, batch };
}

/** Oneof numbers of `hrana.http.StreamResponse`. */
const STREAM_RESPONSE_FIELDS: Record<HttpStreamResponse['type'], number> = {
  close: 1,
  execute: 2,
  batch: 3,
  sequence: 4,
  describe: 5,
  store_sql: 6,
  close_sql: 7,
  get_autocommit: 8,
};

function writeStreamResponse(w: ProtoWriter, res: HttpStreamResponse): void {
  writeStreamResponseBody(w, STREAM_RESPONSE_FIELDS[res.type], res);
}

export function encodePipelineRespBody(body: PipelineRespBody): Buffer {
  const w = new ProtoWriter(1024);
  if (body.baton !== null) w.string(1, body.baton);
  if (body.base_url !== null) w.string(2, body.base_url);
  for (const result of body.results) {
    w.begin(3);
    if (result.type === 'ok') {
      w.begin(1);
      writeStreamResponse(w, result.response);
      w.end();
    } else {
      writeError(w, 2, result.error);
    }
    w.end();
  }
  return w.finish();
}

/** The head of a cursor body: CursorRespBody prefixed with its length. */
export function encodeCursorRespBody(body: CursorRespBody): Buffer {
  const w = new ProtoWriter(128);
  w.begin(null);
  if (body.baton !== null) w.string(1, body.baton);
  if (body.base_url !== null) w.string(2, body.base_url);
  w.end();
  return w.finish();
}

/** One cursor entry of a cursor body, prefixed with its length. */
export function encodeCursorEntryDelimited(entry: CursorEntry): Buffer {
  const w = new ProtoWriter(256);
  writeCursorEntry(w, null, entry);
  return w.finish();
}

/** A bare `hrana.Error` message: the body of a request aborted with a Hrana error (STREAM_EXPIRED). */
export function encodeErrorBody(error: HranaErrorBody): Buffer {
  const w = new ProtoWriter(128);
  writeErrorFields(w, error);
  return w.finish();
}
