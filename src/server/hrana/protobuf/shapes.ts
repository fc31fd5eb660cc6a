import type { BatchResult, CursorEntry, DescribeResult, HranaErrorBody, StmtResult } from '../protocol.js';

/**
 * JSON shapes of the responses the transports build (and the protobuf codec encodes): HTTP
 * pipeline results and WebSocket server messages.
 */

export type HttpStreamResponse =
  | { type: 'close' }
  | { type: 'execute'; result: StmtResult }
  | { type: 'batch'; result: BatchResult }
  | { type: 'sequence' }
  | { type: 'describe'; result: DescribeResult }
  | { type: 'store_sql' }
  | { type: 'close_sql' }
  | { type: 'get_autocommit'; is_autocommit: boolean };

export type HttpStreamResult = { type: 'ok'; response: HttpStreamResponse } | { type: 'error'; error: HranaErrorBody };

export interface PipelineRespBody {
  baton: string | null;
  base_url: string | null;
  results: HttpStreamResult[];
}

export interface CursorRespBody {
  baton: string | null;
  base_url: string | null;
}

export type WsResponse =
  | { type: 'open_stream' }
  | { type: 'close_stream' }
  | { type: 'execute'; result: StmtResult }
  | { type: 'batch'; result: BatchResult }
  | { type: 'open_cursor' }
  | { type: 'close_cursor' }
  | { type: 'fetch_cursor'; entries: CursorEntry[]; done: boolean }
  | { type: 'sequence' }
  | { type: 'describe'; result: DescribeResult }
  | { type: 'store_sql' }
  | { type: 'close_sql' }
  | { type: 'get_autocommit'; is_autocommit: boolean };

export type WsServerMsg =
  | { type: 'hello_ok' }
  | { type: 'hello_error'; error: HranaErrorBody }
  | { type: 'response_ok'; request_id: number; response: WsResponse }
  | { type: 'response_error'; request_id: number; error: HranaErrorBody };

/** A decoded request in JSON shape; the stream and the message checks validate it further. */
export type JsonObject = Record<string, unknown>;
