/**
 * A plain client of the admin API (`serve --admin-listen-addr`, docs/ADMIN.md): typed answers and
 * one error type with stable codes. No React, no Ink: the admin shell's hooks use it, and so can
 * scripts and tests. Requests use Node's fetch with a timeout each.
 */
import { LibsqlctlError } from '../../errors.js';

/** Stable codes of AdminApiError. */
export type AdminErrorCode =
  /** No answer: connection refused, DNS, reset, timeout. */
  | 'ADMIN_UNREACHABLE'
  /** 401: a key is required, or the one given is wrong. */
  | 'ADMIN_UNAUTHORIZED'
  /** 404: no such namespace (or route). */
  | 'ADMIN_NOT_FOUND'
  /** Another 4xx: the server refused the request (its text is the message). */
  | 'ADMIN_REQUEST_REFUSED'
  /** 5xx. */
  | 'ADMIN_SERVER_ERROR'
  /** A 200 whose body is not what the route answers. */
  | 'ADMIN_BAD_RESPONSE';

export class AdminApiError extends LibsqlctlError {
  declare readonly code: AdminErrorCode;
  /** HTTP status, or null when no answer came. */
  readonly status: number | null;

  constructor(code: AdminErrorCode, message: string, status: number | null, options?: { cause?: unknown; hint?: string }) {
    super(code, message, options);
    this.status = status;
  }
}

/** One entry of `GET /v1/namespaces` (our extension). */
export interface NamespaceSummary {
  name: string;
  open: boolean;
  storageBytesUsed: number;
  maxDbSizeBytes: number | null;
  rowsReadCount: number;
  rowsWrittenCount: number;
  queryCount: number;
  replicationIndex: number | null;
  blockReads: boolean;
  blockWrites: boolean;
  blockReason: string | null;
  configVersion: number | null;
  /** Frames captured but not yet in the backup, when the server reports it (`backup_lag_frames`). */
  backupLagFrames: number | null;
}

/** `GET /v1/namespaces/:ns/config`, as sqld sends it (plus our `config_version`). */
export interface NamespaceConfigDoc {
  block_reads: boolean;
  block_writes: boolean;
  block_reason: string | null;
  /** Human-readable on GET (`"10.0 MB"`). */
  max_db_size: string | number | null;
  heartbeat_url: string | null;
  jwt_key: string | null;
  allow_attach: boolean;
  txn_timeout_s: number | null;
  durability_mode: string | null;
  config_version?: number;
}

/** Fields to change in a namespace's config; the others keep their values (see updateConfig). */
export interface ConfigChange {
  block_reads?: boolean;
  block_writes?: boolean;
  block_reason?: string | null;
  /** A byte size: bytes, or a string such as `"10MB"`. */
  max_db_size?: string | number;
  txn_timeout_s?: number | null;
  durability_mode?: string;
}

export interface QueryStat {
  query: string;
  rows_read: number;
  rows_written: number;
  elapsed_ms?: number;
}

/** `GET /v1/namespaces/:ns/stats` (the fields the shell shows). */
export interface NamespaceStatsDoc {
  rows_read_count: number;
  rows_written_count: number;
  storage_bytes_used: number;
  replication_index: number;
  query_count: number;
  elapsed_ms: number;
  top_queries: QueryStat[];
  slowest_queries: QueryStat[];
}

/** The create body (every field optional; docs/ADMIN.md). */
export interface CreateOptions {
  max_db_size?: string | number;
  txn_timeout_s?: number;
  durability_mode?: string;
  jwt_key?: string;
  dump_url?: string;
}

export interface AdminClientOptions {
  /** `http://host:port` of the admin listener. */
  baseUrl: string;
  /** `--admin-auth-key`: sent as `authorization: Basic <key>` (literally, as sqld compares it). */
  authKey?: string | undefined;
  /** Per request (default 5000 ms). */
  timeoutMs?: number;
}

type Json = Record<string, unknown>;

const num = (v: unknown, fallback = 0): number => (typeof v === 'number' && Number.isFinite(v) ? v : fallback);
const numOrNull = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

function summaryFrom(v: unknown): NamespaceSummary {
  if (typeof v !== 'object' || v === null || typeof (v as Json)['name'] !== 'string') {
    throw new AdminApiError('ADMIN_BAD_RESPONSE', 'GET /v1/namespaces answered an entry without a name', 200);
  }
  const o = v as Json;
  return {
    name: o['name'] as string,
    open: o['open'] === true,
    storageBytesUsed: num(o['storage_bytes_used']),
    maxDbSizeBytes: numOrNull(o['max_db_size_bytes']),
    rowsReadCount: num(o['rows_read_count']),
    rowsWrittenCount: num(o['rows_written_count']),
    queryCount: num(o['query_count']),
    replicationIndex: numOrNull(o['replication_index']),
    blockReads: o['block_reads'] === true,
    blockWrites: o['block_writes'] === true,
    blockReason: str(o['block_reason']),
    configVersion: numOrNull(o['config_version']),
    backupLagFrames: numOrNull(o['backup_lag_frames']),
  };
}

/** The server's own words: sqld's `{"error": "..."}`, else the plain text body. */
function errorText(body: string): string {
  try {
    const parsed = JSON.parse(body) as unknown;
    if (typeof parsed === 'object' && parsed !== null && typeof (parsed as Json)['error'] === 'string') return (parsed as Json)['error'] as string;
  } catch {
    // not JSON: the text itself
  }
  return body.trim();
}

function statusError(method: string, path: string, status: number, body: string): AdminApiError {
  const text = errorText(body);
  const what = `${method} ${path}`;
  if (status === 401) {
    return new AdminApiError('ADMIN_UNAUTHORIZED', `the admin API refused the key (401) for ${what}`, status, { hint: 'pass the server\'s --admin-auth-key as --auth KEY' });
  }
  const detail = text === '' ? `HTTP ${status}` : `${text} (HTTP ${status})`;
  if (status === 404) return new AdminApiError('ADMIN_NOT_FOUND', detail, status);
  if (status >= 500) return new AdminApiError('ADMIN_SERVER_ERROR', detail, status);
  return new AdminApiError('ADMIN_REQUEST_REFUSED', detail, status);
}

/** A fetch failure's innermost reason (`ECONNREFUSED`, …), which Node hides in `cause`. */
export function networkReason(err: unknown): string {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e instanceof Error && e.cause !== undefined; depth++) e = e.cause;
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    if (e.name === 'TimeoutError') return 'no answer in time';
    return typeof code === 'string' ? `${code}: ${e.message}` : e.message;
  }
  return String(e);
}

export class AdminClient {
  readonly baseUrl: string;
  readonly #authKey: string | undefined;
  readonly #timeoutMs: number;

  constructor(options: AdminClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.#authKey = options.authKey;
    this.#timeoutMs = options.timeoutMs ?? 5000;
  }

  /** One request; resolves with the body text of a 2xx answer, else throws AdminApiError. */
  async #request(method: string, path: string, body?: unknown): Promise<string> {
    const headers: Record<string, string> = {};
    if (this.#authKey !== undefined) headers['authorization'] = `Basic ${this.#authKey}`;
    const init: RequestInit = { method, headers, signal: AbortSignal.timeout(this.#timeoutMs) };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res: Response;
    let text: string;
    try {
      res = await fetch(`${this.baseUrl}${path}`, init);
      text = await res.text();
    } catch (err) {
      throw new AdminApiError('ADMIN_UNREACHABLE', `cannot reach the admin API at ${this.baseUrl}: ${networkReason(err)}`, null, { cause: err });
    }
    if (res.status < 200 || res.status > 299) throw statusError(method, path, res.status, text);
    return text;
  }

  async #json(method: string, path: string): Promise<unknown> {
    const text = await this.#request(method, path);
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new AdminApiError('ADMIN_BAD_RESPONSE', `${method} ${path} did not answer JSON`, 200, { cause: err });
    }
  }

  /** `GET /`: the welcome text; proves the address and the key. */
  async ping(): Promise<string> {
    return this.#request('GET', '/');
  }

  /** `GET /v1/namespaces`, sorted by name. */
  async listNamespaces(): Promise<NamespaceSummary[]> {
    const body = await this.#json('GET', '/v1/namespaces');
    if (!Array.isArray(body)) throw new AdminApiError('ADMIN_BAD_RESPONSE', 'GET /v1/namespaces did not answer a JSON array', 200);
    return body.map(summaryFrom);
  }

  async stats(ns: string): Promise<NamespaceStatsDoc> {
    const o = (await this.#json('GET', `${nsPath(ns)}/stats`)) as Json;
    const queries = (v: unknown): QueryStat[] => (Array.isArray(v) ? (v as QueryStat[]) : []);
    return {
      rows_read_count: num(o['rows_read_count']),
      rows_written_count: num(o['rows_written_count']),
      storage_bytes_used: num(o['storage_bytes_used']),
      replication_index: num(o['replication_index']),
      query_count: num(o['query_count']),
      elapsed_ms: num(o['elapsed_ms']),
      top_queries: queries(o['top_queries']),
      slowest_queries: queries(o['slowest_queries']),
    };
  }

  async config(ns: string): Promise<NamespaceConfigDoc> {
    const body = await this.#json('GET', `${nsPath(ns)}/config`);
    if (typeof body !== 'object' || body === null) throw new AdminApiError('ADMIN_BAD_RESPONSE', 'the config is not a JSON object', 200);
    return body as NamespaceConfigDoc;
  }

  /** `POST …/config` with exactly this document (sqld's overwrite rules apply: see updateConfig). */
  async setConfig(ns: string, doc: Json): Promise<void> {
    await this.#request('POST', `${nsPath(ns)}/config`, doc);
  }

  /**
   * Changes some settings and keeps the rest: sqld's POST clears `block_reason`, `jwt_key`,
   * `txn_timeout_s` and `allow_attach` when they are missing, so the current values are read first
   * and sent back. `max_db_size` and `durability_mode` are sent only when changed (GET reports the
   * size rounded for humans).
   */
  async updateConfig(ns: string, change: ConfigChange): Promise<void> {
    const cur = await this.config(ns);
    const doc: Json = {
      block_reads: change.block_reads ?? cur.block_reads,
      block_writes: change.block_writes ?? cur.block_writes,
      block_reason: change.block_reason !== undefined ? change.block_reason : cur.block_reason,
      jwt_key: cur.jwt_key,
      allow_attach: cur.allow_attach,
      txn_timeout_s: change.txn_timeout_s !== undefined ? change.txn_timeout_s : cur.txn_timeout_s,
    };
    if (change.max_db_size !== undefined) doc['max_db_size'] = change.max_db_size;
    if (change.durability_mode !== undefined) doc['durability_mode'] = change.durability_mode;
    await this.setConfig(ns, doc);
  }

  async create(ns: string, options: CreateOptions = {}): Promise<void> {
    await this.#request('POST', `${nsPath(ns)}/create`, options);
  }

  /** `POST /v1/namespaces/:from/fork/:to` (with `timestamp`: a point-in-time fork from the backups). */
  async fork(from: string, to: string, timestamp?: string): Promise<void> {
    await this.#request('POST', `${nsPath(from)}/fork/${encodeURIComponent(to)}`, timestamp === undefined ? undefined : { timestamp });
  }

  async delete(ns: string, options: { keepBackup?: boolean } = {}): Promise<void> {
    await this.#request('DELETE', nsPath(ns), options.keepBackup === undefined ? undefined : { keep_backup: options.keepBackup });
  }

  async checkpoint(ns: string): Promise<void> {
    await this.#request('POST', `${nsPath(ns)}/checkpoint`);
  }

  async resetStats(ns: string, which: 'top' | 'slowest'): Promise<void> {
    await this.#request('DELETE', `${nsPath(ns)}/stats/${which}`);
  }

  /** `GET /v1/diagnostics`: one string per live Hrana-over-HTTP stream. */
  async diagnostics(): Promise<string[]> {
    const body = await this.#json('GET', '/v1/diagnostics');
    return Array.isArray(body) ? body.map(String) : [];
  }
}

function nsPath(ns: string): string {
  return `/v1/namespaces/${encodeURIComponent(ns)}`;
}
