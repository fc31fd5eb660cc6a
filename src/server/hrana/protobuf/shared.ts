import type { BatchResult, Col, CursorEntry, DescribeResult, HranaErrorBody, StmtResult, Value } from '../protocol.js';
import type { HttpStreamResponse, JsonObject } from './shapes.js';
import { ProtoReader, ProtoWriter } from './wire.js';

/**
 * Package `hrana` (spec Appendix B.1): requests are decoded into the JSON shapes HranaStream takes,
 * results are encoded from the JSON shapes it returns. Integers travel as decimal strings on the
 * JSON side and as (zigzag) varints here; blobs as base64 there and raw bytes here.
 */

// ---- encoding --------------------------------------------------------------------------------

export function writeValue(w: ProtoWriter, field: number, v: Value): void {
  w.begin(field);
  switch (v.type) {
    case 'null':
      w.empty(1);
      break;
    case 'integer':
      w.sint64(2, v.value);
      break;
    case 'float':
      w.double(3, v.value);
      break;
    case 'text':
      w.string(4, v.value);
      break;
    case 'blob':
      w.bytes(5, Buffer.from(v.base64, 'base64'));
      break;
  }
  w.end();
}

function writeCol(w: ProtoWriter, field: number, c: Col): void {
  w.begin(field);
  if (c.name !== null) w.string(1, c.name);
  if (c.decltype !== null) w.string(2, c.decltype);
  w.end();
}

export function writeRow(w: ProtoWriter, field: number, row: Value[]): void {
  w.begin(field);
  for (const v of row) writeValue(w, 1, v);
  w.end();
}

/** The fields of an Error (also a message body of its own: STREAM_EXPIRED answers). */
export function writeErrorFields(w: ProtoWriter, e: HranaErrorBody): void {
  if (e.message !== '') w.string(1, e.message);
  w.string(2, e.code);
}

export function writeError(w: ProtoWriter, field: number, e: HranaErrorBody): void {
  w.begin(field);
  writeErrorFields(w, e);
  w.end();
}

export function writeStmtResult(w: ProtoWriter, field: number, r: StmtResult): void {
  w.begin(field);
  for (const c of r.cols) writeCol(w, 1, c);
  for (const row of r.rows) writeRow(w, 2, row);
  if (r.affected_row_count !== 0) w.uint64(3, r.affected_row_count);
  if (r.last_insert_rowid !== null) w.sint64(4, r.last_insert_rowid);
  if (r.replication_index !== null) w.uint64(5, r.replication_index);
  if (r.rows_read !== 0) w.uint64(6, r.rows_read);
  if (r.rows_written !== 0) w.uint64(7, r.rows_written);
  if (r.query_duration_ms !== 0) w.double(8, r.query_duration_ms);
  w.end();
}

/** Maps of step index → result / error with only the non-null entries; no `replication_index`. */
export function writeBatchResult(w: ProtoWriter, field: number, r: BatchResult): void {
  w.begin(field);
  r.step_results.forEach((res, i) => {
    if (res === null) return;
    w.begin(1);
    w.uint32(1, i);
    writeStmtResult(w, 2, res);
    w.end();
  });
  r.step_errors.forEach((err, i) => {
    if (err === null) return;
    w.begin(2);
    w.uint32(1, i);
    writeError(w, 2, err);
    w.end();
  });
  w.end();
}

export function writeDescribeResult(w: ProtoWriter, field: number, r: DescribeResult): void {
  w.begin(field);
  for (const p of r.params) {
    w.begin(1);
    if (p.name !== null) w.string(1, p.name);
    w.end();
  }
  for (const c of r.cols) {
    w.begin(2);
    w.string(1, c.name);
    if (c.decltype !== null) w.string(2, c.decltype);
    w.end();
  }
  if (r.is_explain) w.bool(3, true);
  if (r.is_readonly) w.bool(4, true);
  w.end();
}

/** A CursorEntry in `field`, or (null) as a bare length-delimited message (HTTP cursor body). */
export function writeCursorEntry(w: ProtoWriter, field: number | null, e: CursorEntry): void {
  w.begin(field);
  switch (e.type) {
    case 'step_begin':
      w.begin(1);
      if (e.step !== 0) w.uint32(1, e.step);
      for (const c of e.cols) writeCol(w, 2, c);
      w.end();
      break;
    case 'step_end':
      w.begin(2);
      if (e.affected_row_count !== 0) w.uint64(1, e.affected_row_count);
      if (e.last_insert_rowid !== null) w.sint64(2, e.last_insert_rowid);
      w.end();
      break;
    case 'step_error':
      w.begin(3);
      if (e.step !== 0) w.uint32(1, e.step);
      writeError(w, 2, e.error);
      w.end();
      break;
    case 'row':
      writeRow(w, 4, e.row);
      break;
    case 'error':
      writeError(w, 5, e.error);
      break;
    case 'replication_index':
      // sqld's extension: a nested message holding the index; nothing at all when it is null
      if (e.replication_index !== null) {
        w.begin(6);
        if (e.replication_index !== 0) w.uint64(1, e.replication_index);
        w.end();
      }
      break;
  }
  w.end();
}

// ---- decoding --------------------------------------------------------------------------------

/** Absent message fields decode as their empty messages (protobuf defaults). */
export const emptyBatch = (): JsonObject => ({ steps: [] });
export const emptyStmt = (): JsonObject => ({ args: [], named_args: [] });

/** A Value; one without a known field comes out as `{}` (HranaStream: "Value type not recognized"). */
export function readValue(r: ProtoReader): JsonObject {
  let value: JsonObject = {};
  while (r.more()) {
    switch (r.field()) {
      case 1:
        r.skip();
        value = { type: 'null' };
        break;
      case 2:
        value = { type: 'integer', value: r.sint64().toString() };
        break;
      case 3:
        value = { type: 'float', value: r.double() };
        break;
      case 4:
        value = { type: 'text', value: r.string() };
        break;
      case 5:
        value = { type: 'blob', base64: Buffer.from(r.bytes()).toString('base64') };
        break;
      default:
        r.skip();
    }
  }
  return value;
}

function readNamedArg(r: ProtoReader): JsonObject {
  let name = '';
  let value: JsonObject = {};
  while (r.more()) {
    switch (r.field()) {
      case 1:
        name = r.string();
        break;
      case 2:
        value = readValue(r.message());
        break;
      default:
        r.skip();
    }
  }
  return { name, value };
}

export function readStmt(r: ProtoReader): JsonObject {
  const stmt: JsonObject = {};
  const args: JsonObject[] = [];
  const namedArgs: JsonObject[] = [];
  while (r.more()) {
    switch (r.field()) {
      case 1:
        stmt.sql = r.string();
        break;
      case 2:
        stmt.sql_id = r.int32();
        break;
      case 3:
        args.push(readValue(r.message()));
        break;
      case 4:
        namedArgs.push(readNamedArg(r.message()));
        break;
      case 5:
        stmt.want_rows = r.bool();
        break;
      case 6:
        stmt.replication_index = r.uint64().toString();
        break;
      default:
        r.skip();
    }
  }
  stmt.args = args;
  stmt.named_args = namedArgs;
  return stmt;
}

function readCondList(r: ProtoReader): JsonObject[] {
  const conds: JsonObject[] = [];
  while (r.more()) {
    if (r.field() === 1) conds.push(readBatchCond(r.message()));
    else r.skip();
  }
  return conds;
}

/** A BatchCond; one without a known field comes out as `{}` (an unknown condition for the stream). */
export function readBatchCond(r: ProtoReader): JsonObject {
  let cond: JsonObject = {};
  while (r.more()) {
    switch (r.field()) {
      case 1:
        cond = { type: 'ok', step: r.uint32() };
        break;
      case 2:
        cond = { type: 'error', step: r.uint32() };
        break;
      case 3:
        cond = { type: 'not', cond: readBatchCond(r.message()) };
        break;
      case 4:
        cond = { type: 'and', conds: readCondList(r.message()) };
        break;
      case 5:
        cond = { type: 'or', conds: readCondList(r.message()) };
        break;
      case 6:
        r.skip();
        cond = { type: 'is_autocommit' };
        break;
      default:
        r.skip();
    }
  }
  return cond;
}

function readBatchStep(r: ProtoReader): JsonObject {
  const step: JsonObject = {};
  let stmt: JsonObject | null = null;
  while (r.more()) {
    switch (r.field()) {
      case 1:
        step.condition = readBatchCond(r.message());
        break;
      case 2:
        stmt = readStmt(r.message());
        break;
      default:
        r.skip();
    }
  }
  step.stmt = stmt ?? emptyStmt();
  return step;
}

export function readBatch(r: ProtoReader): JsonObject {
  const batch: JsonObject = {};
  const steps: JsonObject[] = [];
  while (r.more()) {
    switch (r.field()) {
      case 1:
        steps.push(readBatchStep(r.message()));
        break;
      case 2:
        batch.replication_index = r.uint64().toString();
        break;
      default:
        r.skip();
    }
  }
  batch.steps = steps;
  return batch;
}

/**
 * A stream response as the oneof member `field` (HTTP `StreamResponse` and WebSocket `Response` hold
 * the same bodies under different numbers); responses without a body are empty messages.
 */
export function writeStreamResponseBody(w: ProtoWriter, field: number, res: HttpStreamResponse): void {
  switch (res.type) {
    case 'execute':
      w.begin(field);
      writeStmtResult(w, 1, res.result);
      w.end();
      return;
    case 'batch':
      w.begin(field);
      writeBatchResult(w, 1, res.result);
      w.end();
      return;
    case 'describe':
      w.begin(field);
      writeDescribeResult(w, 1, res.result);
      w.end();
      return;
    case 'get_autocommit':
      w.begin(field);
      if (res.is_autocommit) w.bool(1, true);
      w.end();
      return;
    default:
      w.empty(field);
  }
}
