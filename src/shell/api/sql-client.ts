/**
 * The admin shell's SQL console talks to the server's user port (`--http-url`): one Hrana-over-HTTP
 * request per statement, `POST /v2/pipeline` with `execute` then `close`, the namespace in the
 * `x-namespace` header. (sqld's admin-shell gRPC service on the admin port is not built yet; the
 * user port also means the statement runs with the user API's rules and the namespace's config.)
 */
import { LibsqlctlError } from '../../errors.js';
import { networkReason } from './admin-client.js';

export type SqlErrorCode = 'SQL_UNREACHABLE' | 'SQL_HTTP_ERROR' | 'SQL_BAD_RESPONSE';

/** The statement could not be sent or the answer was not Hrana (a statement's own error is a SqlResult). */
export class SqlClientError extends LibsqlctlError {
  declare readonly code: SqlErrorCode;
  readonly status: number | null;

  constructor(code: SqlErrorCode, message: string, status: number | null, options?: { cause?: unknown }) {
    super(code, message, options);
    this.status = status;
  }
}

/** A value as the console shows it; `null` is SQL NULL. */
export type Cell = string | null;

export type SqlResult =
  | { kind: 'rows'; columns: string[]; rows: Cell[][]; affectedRowCount: number; lastInsertRowid: string | null; durationMs: number | null }
  | { kind: 'error'; message: string; code: string | null };

export interface SqlClientOptions {
  /** `http://host:port` of the user port. */
  baseUrl: string;
  /** Sent as `authorization: Bearer <token>` when set. */
  authToken?: string | undefined;
  timeoutMs?: number;
}

type Json = Record<string, unknown>;

/** Hrana's JSON value → display text. */
export function cellText(v: unknown): Cell {
  if (typeof v !== 'object' || v === null) return String(v);
  const o = v as Json;
  switch (o['type']) {
    case 'null':
      return null;
    case 'integer':
    case 'text':
      return String(o['value']);
    case 'float':
      return String(o['value']);
    case 'blob': {
      const bytes = Buffer.from(typeof o['base64'] === 'string' ? o['base64'] : '', 'base64');
      return `x'${bytes.toString('hex')}'`;
    }
    default:
      return JSON.stringify(v);
  }
}

function resultFrom(r: unknown): SqlResult {
  const o = (r ?? {}) as Json;
  if (o['type'] === 'error') {
    const e = (o['error'] ?? {}) as Json;
    return { kind: 'error', message: typeof e['message'] === 'string' ? e['message'] : 'error', code: typeof e['code'] === 'string' ? e['code'] : null };
  }
  const res = ((o['response'] as Json | undefined)?.['result'] ?? null) as Json | null;
  if (o['type'] !== 'ok' || res === null) throw new SqlClientError('SQL_BAD_RESPONSE', 'the server answered something that is not a Hrana execute result', 200);
  const cols = Array.isArray(res['cols']) ? (res['cols'] as Json[]) : [];
  const rows = Array.isArray(res['rows']) ? (res['rows'] as unknown[][]) : [];
  return {
    kind: 'rows',
    columns: cols.map((c, i) => (typeof c['name'] === 'string' ? c['name'] : `column${i + 1}`)),
    rows: rows.map((row) => row.map(cellText)),
    affectedRowCount: typeof res['affected_row_count'] === 'number' ? res['affected_row_count'] : 0,
    lastInsertRowid: typeof res['last_insert_rowid'] === 'string' ? res['last_insert_rowid'] : null,
    durationMs: typeof res['query_duration_ms'] === 'number' ? res['query_duration_ms'] : null,
  };
}

function httpErrorText(body: string): string {
  try {
    const parsed = JSON.parse(body) as Json;
    if (typeof parsed['error'] === 'string') return parsed['error'];
    if (typeof parsed['message'] === 'string') return parsed['message'];
  } catch {
    // plain text
  }
  return body.trim();
}

export class SqlClient {
  readonly baseUrl: string;
  readonly #authToken: string | undefined;
  readonly #timeoutMs: number;

  constructor(options: SqlClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.#authToken = options.authToken;
    this.#timeoutMs = options.timeoutMs ?? 15_000;
  }

  /** Runs one statement on `namespace`. */
  async execute(namespace: string, sql: string): Promise<SqlResult> {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'x-namespace': namespace };
    if (this.#authToken !== undefined) headers['authorization'] = `Bearer ${this.#authToken}`;
    const body = JSON.stringify({ baton: null, requests: [{ type: 'execute', stmt: { sql } }, { type: 'close' }] });
    let res: Response;
    let text: string;
    try {
      res = await fetch(`${this.baseUrl}/v2/pipeline`, { method: 'POST', headers, body, signal: AbortSignal.timeout(this.#timeoutMs) });
      text = await res.text();
    } catch (err) {
      throw new SqlClientError('SQL_UNREACHABLE', `cannot reach the user port at ${this.baseUrl}: ${networkReason(err)}`, null, { cause: err });
    }
    if (res.status !== 200) {
      const detail = httpErrorText(text);
      throw new SqlClientError('SQL_HTTP_ERROR', `${detail === '' ? 'no text' : detail} (HTTP ${res.status})`, res.status);
    }
    let parsed: Json;
    try {
      parsed = JSON.parse(text) as Json;
    } catch (err) {
      throw new SqlClientError('SQL_BAD_RESPONSE', 'the user port did not answer JSON', 200, { cause: err });
    }
    const results = parsed['results'];
    if (!Array.isArray(results) || results.length === 0) throw new SqlClientError('SQL_BAD_RESPONSE', 'the pipeline answer has no results', 200);
    return resultFrom(results[0]);
  }
}
