import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
// hrana-client-ts's own protobuf codec (not exported by the package): an independent implementation
// to check our bytes against, from both directions.
import { readProtobufMessage } from '../../node_modules/@libsql/hrana-client/lib-esm/encoding/protobuf/decode.js';
import { writeProtobufMessage } from '../../node_modules/@libsql/hrana-client/lib-esm/encoding/protobuf/encode.js';
import * as clientHttpDecode from '../../node_modules/@libsql/hrana-client/lib-esm/http/protobuf_decode.js';
import * as clientHttpEncode from '../../node_modules/@libsql/hrana-client/lib-esm/http/protobuf_encode.js';
import type * as clientProto from '../../node_modules/@libsql/hrana-client/lib-esm/http/proto.js';
import { CursorEntry as ClientCursorEntry } from '../../node_modules/@libsql/hrana-client/lib-esm/shared/protobuf_decode.js';
import * as clientWsDecode from '../../node_modules/@libsql/hrana-client/lib-esm/ws/protobuf_decode.js';
import * as clientWsEncode from '../../node_modules/@libsql/hrana-client/lib-esm/ws/protobuf_encode.js';
import { encodeValue } from '../../src/server/hrana/values.js';
import type { CursorEntry, StmtResult, Value } from '../../src/server/hrana/protocol.js';
import { decodeCursorReqBody, decodePipelineReqBody, encodeCursorEntryDelimited, encodeCursorRespBody, encodeErrorBody, encodePipelineRespBody } from '../../src/server/hrana/protobuf/http.js';
import { readValue, writeValue } from '../../src/server/hrana/protobuf/shared.js';
import { decodeWsClientMsg, encodeWsServerMsg } from '../../src/server/hrana/protobuf/ws.js';
import { ProtobufDecodeError, ProtoReader, ProtoWriter } from '../../src/server/hrana/protobuf/wire.js';

const I64_MAX = 2n ** 63n - 1n;
const I64_MIN = -(2n ** 63n);

function roundTripValue(v: Value): unknown {
  const w = new ProtoWriter(8);
  writeValue(w, 1, v);
  const r = new ProtoReader(w.finish());
  expect(r.field()).toBe(1);
  return readValue(r.message());
}

/** Splits a cursor body: varint length, message, varint length, message, ... */
function splitDelimited(data: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let pos = 0;
  while (pos < data.length) {
    let len = 0;
    for (let shift = 0; ; shift += 7) {
      const b = data[pos++] ?? 0;
      len += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) break;
    }
    out.push(data.subarray(pos, pos + len));
    pos += len;
  }
  return out;
}

describe('protobuf wire', () => {
  it('round-trips varints, zigzag and sign-extended int32 at their limits', () => {
    const w = new ProtoWriter(4);
    const u32 = [0, 1, 127, 128, 16383, 16384, 2 ** 31 - 1, 2 ** 32 - 1];
    const i32 = [0, -1, 2 ** 31 - 1, -(2 ** 31)];
    const s64 = [0n, 1n, -1n, 2n ** 52n, -(2n ** 52n), I64_MAX, I64_MIN];
    const u64 = ['0', '9007199254740991', '18446744073709551615'];
    for (const v of u32) w.uint32(1, v);
    for (const v of i32) w.int32(2, v);
    for (const v of s64) w.sint64(3, v.toString());
    for (const v of u64) w.uint64(4, v);
    const r = new ProtoReader(w.finish());
    for (const v of u32) expect([r.field(), r.uint32()]).toEqual([1, v]);
    for (const v of i32) expect([r.field(), r.int32()]).toEqual([2, v]);
    for (const v of s64) expect([r.field(), r.sint64()]).toEqual([3, v]);
    for (const v of u64) expect([r.field(), r.uint64()]).toEqual([4, BigInt(v)]);
    expect(r.more()).toBe(false);
    // -1 as int32 takes the full 10 bytes, as protobuf requires
    const neg = new ProtoWriter();
    neg.int32(1, -1);
    expect(neg.finish().length).toBe(11);
  });

  it('frames nested messages of any length', () => {
    for (const size of [0, 1, 127, 128, 300, 16383, 16384, 70_000]) {
      const w = new ProtoWriter(16);
      w.begin(7);
      w.bytes(1, Buffer.alloc(size, 0xab));
      w.end();
      w.string(8, 'after');
      const r = new ProtoReader(w.finish());
      expect(r.field()).toBe(7);
      const inner = r.message();
      expect(inner.field()).toBe(1);
      expect(Buffer.from(inner.bytes()).equals(Buffer.alloc(size, 0xab))).toBe(true);
      expect([r.field(), r.string()]).toEqual([8, 'after']);
    }
  });

  it('rejects truncated data, wrong wire types, bad UTF-8 and groups', () => {
    const bad: [Uint8Array, (r: ProtoReader) => unknown][] = [
      [Buffer.from([0x08]), (r) => r.uint32()],
      [Buffer.from([0x0a, 0x05, 0x61]), (r) => r.string()],
      [Buffer.from([0x08, 0x01]), (r) => r.string()],
      [Buffer.from([0x0a, 0x02, 0xc3, 0x28]), (r) => r.string()],
      [Buffer.from([0x0b]), (r) => r.skip()],
      [Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), (r) => r.uint64()],
    ];
    for (const [data, read] of bad) {
      const r = new ProtoReader(data);
      expect(() => {
        r.field();
        read(r);
      }).toThrow(ProtobufDecodeError);
    }
    expect(() => decodePipelineReqBody(Buffer.from([0x12, 0x10, 0x00]))).toThrow(ProtobufDecodeError);
  });

  it('round-trips every SQLite value through Value', () => {
    const sqlValue = fc.oneof(
      fc.constant(null),
      fc.bigInt({ min: I64_MIN, max: I64_MAX }),
      fc.double({ noNaN: true }),
      fc.string({ unit: 'binary', maxLength: 200 }),
      fc.uint8Array({ maxLength: 300 }),
    );
    fc.assert(
      fc.property(sqlValue, (v) => {
        const json = encodeValue(v);
        const back = roundTripValue(json);
        if (json.type === 'blob') expect(back).toEqual({ type: 'blob', base64: Buffer.from(json.base64, 'base64').toString('base64') });
        else expect(back).toEqual(json);
      }),
    );
    expect(roundTripValue({ type: 'float', value: -0 })).toEqual({ type: 'float', value: -0 });
  });
});

const RESULT: StmtResult = {
  cols: [
    { name: 'i', decltype: 'INTEGER' },
    { name: 'b', decltype: null },
  ],
  rows: [
    [{ type: 'integer', value: I64_MAX.toString() }, { type: 'blob', base64: 'AAEC/w' }],
    [{ type: 'null' }, { type: 'float', value: 0.5 }],
    [{ type: 'integer', value: I64_MIN.toString() }, { type: 'text', value: 'ünï 🙂'.repeat(40) }],
  ],
  affected_row_count: 2,
  last_insert_rowid: '-7',
  replication_index: '12',
  rows_read: 3,
  rows_written: 2,
  query_duration_ms: 0.125,
};
const CLIENT_ROWS = [
  [I64_MAX, new Uint8Array([0, 1, 2, 255])],
  [null, 0.5],
  [I64_MIN, 'ünï 🙂'.repeat(40)],
];

describe('hrana.http codec against hrana-client-ts', () => {
  it('decodes every PipelineReqBody request the client encodes', () => {
    const body: clientProto.PipelineReqBody = {
      baton: 'b1',
      requests: [
        {
          type: 'execute',
          stmt: { sql: 'SELECT ?', sqlId: undefined, args: [null, I64_MIN, 1.5, 'txt', new Uint8Array([9, 8]), undefined], namedArgs: [{ name: ':n', value: I64_MAX }], wantRows: false },
        },
        {
          type: 'batch',
          batch: {
            steps: [
              { condition: undefined, stmt: { sql: undefined, sqlId: 3, args: [], namedArgs: [], wantRows: true } },
              {
                condition: { type: 'or', conds: [{ type: 'ok', step: 0 }, { type: 'not', cond: { type: 'error', step: 0 } }, { type: 'and', conds: [{ type: 'is_autocommit' }] }] },
                stmt: { sql: 'X', sqlId: undefined, args: [], namedArgs: [], wantRows: true },
              },
            ],
          },
        },
        { type: 'sequence', sql: 'A; B', sqlId: undefined },
        { type: 'describe', sql: undefined, sqlId: 4 },
        { type: 'store_sql', sqlId: -2, sql: 'S' },
        { type: 'close_sql', sqlId: -2 },
        { type: 'get_autocommit' },
        { type: 'close' },
      ],
    };
    const decoded = decodePipelineReqBody(writeProtobufMessage(body, clientHttpEncode.PipelineReqBody));
    expect(decoded).toEqual({
      baton: 'b1',
      requests: [
        {
          type: 'execute',
          stmt: {
            sql: 'SELECT ?',
            args: [{ type: 'null' }, { type: 'integer', value: I64_MIN.toString() }, { type: 'float', value: 1.5 }, { type: 'text', value: 'txt' }, { type: 'blob', base64: 'CQg=' }, {}],
            named_args: [{ name: ':n', value: { type: 'integer', value: I64_MAX.toString() } }],
            want_rows: false,
          },
        },
        {
          type: 'batch',
          batch: {
            steps: [
              { stmt: { sql_id: 3, args: [], named_args: [], want_rows: true } },
              {
                condition: { type: 'or', conds: [{ type: 'ok', step: 0 }, { type: 'not', cond: { type: 'error', step: 0 } }, { type: 'and', conds: [{ type: 'is_autocommit' }] }] },
                stmt: { sql: 'X', args: [], named_args: [], want_rows: true },
              },
            ],
          },
        },
        { type: 'sequence', sql: 'A; B' },
        { type: 'describe', sql_id: 4 },
        { type: 'store_sql', sql_id: -2, sql: 'S' },
        { type: 'close_sql', sql_id: -2 },
        { type: 'get_autocommit' },
        { type: 'close' },
      ],
    });
    const cursor: clientProto.CursorReqBody = { baton: undefined, batch: { steps: [] } };
    expect(decodeCursorReqBody(writeProtobufMessage(cursor, clientHttpEncode.CursorReqBody))).toEqual({ baton: null, batch: { steps: [] } });
    expect(decodeCursorReqBody(new Uint8Array())).toEqual({ baton: null, batch: { steps: [] } });
  });

  it('encodes PipelineRespBody as the client reads it (maps hold only executed steps)', () => {
    const bytes = encodePipelineRespBody({
      baton: 'next',
      base_url: null,
      results: [
        { type: 'ok', response: { type: 'execute', result: RESULT } },
        { type: 'ok', response: { type: 'batch', result: { step_results: [null, RESULT, null], step_errors: [{ message: 'no such table: t', code: 'SQLITE_UNKNOWN' }, null, null], replication_index: '4' } } },
        { type: 'error', error: { message: 'bad', code: 'SQL_PARSE_ERROR' } },
        { type: 'ok', response: { type: 'get_autocommit', is_autocommit: false } },
        { type: 'ok', response: { type: 'describe', result: { params: [{ name: ':a' }, { name: null }], cols: [{ name: 'x', decltype: 'TEXT' }], is_explain: false, is_readonly: true } } },
        { type: 'ok', response: { type: 'close' } },
      ],
    });
    const body = readProtobufMessage(bytes, clientHttpDecode.PipelineRespBody);
    expect(body.baton).toBe('next');
    expect(body.baseUrl).toBeUndefined();
    const [exec, batch, error, autocommit, describe, close] = body.results;
    const stmt = { cols: RESULT.cols.map((c) => ({ name: c.name, decltype: c.decltype ?? undefined })), rows: CLIENT_ROWS, affectedRowCount: 2, lastInsertRowid: -7n };
    expect(exec).toEqual({ type: 'ok', response: { type: 'execute', result: stmt } });
    expect(batch).toEqual({ type: 'ok', response: { type: 'batch', result: { stepResults: new Map([[1, stmt]]), stepErrors: new Map([[0, { message: 'no such table: t', code: 'SQLITE_UNKNOWN' }]]) } } });
    expect(error).toEqual({ type: 'error', error: { message: 'bad', code: 'SQL_PARSE_ERROR' } });
    expect(autocommit).toEqual({ type: 'ok', response: { type: 'get_autocommit', isAutocommit: false } });
    expect(describe).toEqual({
      type: 'ok',
      response: { type: 'describe', result: { params: [{ name: ':a' }, { name: undefined }], cols: [{ name: 'x', decltype: 'TEXT' }], isExplain: false, isReadonly: true } },
    });
    expect(close).toEqual({ type: 'ok', response: { type: 'close' } });
  });

  it('frames a cursor body as length-delimited messages, with sqld\'s replication_index entry', () => {
    const entries: CursorEntry[] = [
      { type: 'step_begin', step: 0, cols: [{ name: 'x', decltype: null }] },
      { type: 'row', row: [{ type: 'integer', value: '5' }] },
      { type: 'step_end', affected_row_count: 1, last_insert_rowid: 5 },
      { type: 'step_error', step: 1, error: { message: 'boom', code: 'SQLITE_CONSTRAINT' } },
      { type: 'error', error: { message: 'Transaction timed out', code: 'TRANSACTION_TIMEOUT' } },
      { type: 'replication_index', replication_index: 300 },
      { type: 'replication_index', replication_index: null },
    ];
    const body = Buffer.concat([encodeCursorRespBody({ baton: 'bt', base_url: 'http://self' }), ...entries.map(encodeCursorEntryDelimited)]);
    const [head, ...frames] = splitDelimited(body);
    expect(readProtobufMessage(head ?? new Uint8Array(), clientHttpDecode.CursorRespBody)).toEqual({ baton: 'bt', baseUrl: 'http://self' });
    const decoded = frames.map((f) => readProtobufMessage(f, ClientCursorEntry));
    expect(decoded.slice(0, 5)).toEqual([
      { type: 'step_begin', step: 0, cols: [{ name: 'x', decltype: undefined }] },
      { type: 'row', row: [5n] },
      // the client reads last_insert_rowid as uint64; the wire value is sint64 (zigzag) 5 → 10
      { type: 'step_end', affectedRowCount: 1, lastInsertRowid: 10n },
      { type: 'step_error', step: 1, error: { message: 'boom', code: 'SQLITE_CONSTRAINT' } },
      { type: 'error', error: { message: 'Transaction timed out', code: 'TRANSACTION_TIMEOUT' } },
    ]);
    // field 6 is a nested message {value = 1}; a null index leaves an empty entry
    expect(Buffer.from(frames[5] ?? []).toString('hex')).toBe('3203' + '08ac02');
    expect(frames[6]?.length).toBe(0);
    expect(Buffer.from(encodeErrorBody({ message: 'm', code: 'STREAM_EXPIRED' })).toString('hex')).toBe('0a016d120e' + Buffer.from('STREAM_EXPIRED').toString('hex'));
  });
});

describe('hrana.ws codec against hrana-client-ts', () => {
  const wsRequest = (request: clientProto.StreamRequest | Record<string, unknown>, requestId = 1): Uint8Array =>
    writeProtobufMessage({ type: 'request', requestId, request } as never, clientWsEncode.ClientMsg);

  it('decodes hello and every request into the hrana3 JSON shapes', () => {
    expect(decodeWsClientMsg(writeProtobufMessage({ type: 'hello', jwt: 'tok' }, clientWsEncode.ClientMsg))).toEqual({ type: 'hello', jwt: 'tok' });
    expect(decodeWsClientMsg(writeProtobufMessage({ type: 'hello', jwt: undefined }, clientWsEncode.ClientMsg))).toEqual({ type: 'hello', jwt: null });
    const stmt = { sql: 'SELECT 1', sqlId: undefined, args: [], namedArgs: [], wantRows: true };
    const cases: [Record<string, unknown>, Record<string, unknown>][] = [
      [{ type: 'open_stream', streamId: 0 }, { type: 'open_stream', stream_id: 0 }],
      [{ type: 'close_stream', streamId: 3 }, { type: 'close_stream', stream_id: 3 }],
      [{ type: 'execute', streamId: 1, stmt }, { type: 'execute', stream_id: 1, stmt: { sql: 'SELECT 1', args: [], named_args: [], want_rows: true } }],
      [{ type: 'batch', streamId: 1, batch: { steps: [] } }, { type: 'batch', stream_id: 1, batch: { steps: [] } }],
      [{ type: 'open_cursor', streamId: 1, cursorId: 2, batch: { steps: [] } }, { type: 'open_cursor', stream_id: 1, cursor_id: 2, batch: { steps: [] } }],
      [{ type: 'close_cursor', cursorId: 2 }, { type: 'close_cursor', cursor_id: 2 }],
      [{ type: 'fetch_cursor', cursorId: 2, maxCount: 1000 }, { type: 'fetch_cursor', cursor_id: 2, max_count: 1000 }],
      [{ type: 'sequence', streamId: 1, sql: undefined, sqlId: 7 }, { type: 'sequence', stream_id: 1, sql_id: 7 }],
      [{ type: 'describe', streamId: 1, sql: 'SELECT ?', sqlId: undefined }, { type: 'describe', stream_id: 1, sql: 'SELECT ?' }],
      [{ type: 'store_sql', sqlId: 7, sql: 'SELECT 2' }, { type: 'store_sql', sql_id: 7, sql: 'SELECT 2' }],
      [{ type: 'close_sql', sqlId: 7 }, { type: 'close_sql', sql_id: 7 }],
      [{ type: 'get_autocommit', streamId: 1 }, { type: 'get_autocommit', stream_id: 1 }],
    ];
    for (const [request, expected] of cases) {
      expect(decodeWsClientMsg(wsRequest(request, 42))).toEqual({ type: 'request', request_id: 42, request: expected });
    }
    expect(decodeWsClientMsg(new Uint8Array())).toEqual({});
  });

  it('encodes every ServerMsg as the client reads it', () => {
    const decode = (msg: Parameters<typeof encodeWsServerMsg>[0]): unknown => readProtobufMessage(encodeWsServerMsg(msg), clientWsDecode.ServerMsg);
    expect(decode({ type: 'hello_ok' })).toEqual({ type: 'hello_ok' });
    expect(decode({ type: 'hello_error', error: { message: 'Authentication failed: x', code: 'AUTH_JWT_INVALID' } })).toEqual({ type: 'hello_error', error: { message: 'Authentication failed: x', code: 'AUTH_JWT_INVALID' } });
    expect(decode({ type: 'response_error', request_id: 9, error: { message: 'e', code: 'SQLITE_UNKNOWN' } })).toEqual({ type: 'response_error', requestId: 9, error: { message: 'e', code: 'SQLITE_UNKNOWN' } });
    for (const type of ['open_stream', 'close_stream', 'open_cursor', 'close_cursor', 'sequence', 'store_sql', 'close_sql'] as const) {
      expect(decode({ type: 'response_ok', request_id: 0, response: { type } })).toEqual({ type: 'response_ok', requestId: 0, response: { type } });
    }
    expect(decode({ type: 'response_ok', request_id: 1, response: { type: 'get_autocommit', is_autocommit: true } })).toEqual({ type: 'response_ok', requestId: 1, response: { type: 'get_autocommit', isAutocommit: true } });
    const exec = decode({ type: 'response_ok', request_id: 2, response: { type: 'execute', result: RESULT } }) as { response: { result: { rows: unknown } } };
    expect(exec.response.result.rows).toEqual(CLIENT_ROWS);
    const fetched = decode({
      type: 'response_ok',
      request_id: 3,
      response: { type: 'fetch_cursor', entries: [{ type: 'step_begin', step: 2, cols: [] }, { type: 'step_end', affected_row_count: 0, last_insert_rowid: null }], done: true },
    });
    expect(fetched).toEqual({
      type: 'response_ok',
      requestId: 3,
      response: { type: 'fetch_cursor', entries: [{ type: 'step_begin', step: 2, cols: [] }, { type: 'step_end', affectedRowCount: 0, lastInsertRowid: undefined }], done: true },
    });
  });
});
