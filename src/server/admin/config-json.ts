/**
 * The admin API's JSON for namespace settings (spec §9): the create body, the config document of
 * GET/POST `/v1/namespaces/:ns/config` with sqld's overwrite rules, translated to and from the
 * engine's NamespaceConfig (src/engine/namespace-config.ts).
 */
import { LibsqlctlError } from '../../errors.js';
import { DURABILITY_MODES, type DurabilityMode, type NamespaceConfig, type NamespaceSettings } from '../../engine/namespace-config.js';
import { PAGE_SIZE } from '../../engine/wal/frame.js';
import { parseJwtKeys } from '../auth/jwt-keys.js';
import { field, wrongShape } from './admin-body.js';
import { formatByteSize, parseByteSizeValue } from './byte-size.js';

/** A request the admin API cannot carry out: a setting of the right JSON type but an unusable value, a create on a replica (HTTP 400, `{"error": …}`). */
export class AdminRequestError extends LibsqlctlError {}

/** SQLite's default `max_page_count` (no limit set): what GET reports as `max_db_size` then. */
const SQLITE_DEFAULT_MAX_PAGES = 4294967294;

function maxDbPages(obj: Record<string, unknown>): number | undefined {
  const v = obj['max_db_size'];
  if (v === undefined || v === null) return undefined;
  let bytes: number;
  try {
    bytes = parseByteSizeValue(v);
  } catch (err) {
    throw wrongShape(`max_db_size: ${err instanceof Error ? err.message : String(err)}`);
  }
  // sqld stores pages (bytes / 4096); a limit below one page would refuse every write.
  return Math.max(1, Math.floor(bytes / PAGE_SIZE));
}

function durability(obj: Record<string, unknown>): DurabilityMode | undefined {
  const v = field.string(obj, 'durability_mode');
  if (v === undefined) return undefined;
  if (!DURABILITY_MODES.includes(v as DurabilityMode)) throw wrongShape(`durability_mode: unknown variant \`${v}\`, expected one of ${DURABILITY_MODES.map((m) => `\`${m}\``).join(', ')}`);
  return v as DurabilityMode;
}

function heartbeatUrl(obj: Record<string, unknown>): string | undefined {
  const v = field.string(obj, 'heartbeat_url');
  if (v === undefined) return undefined;
  if (!URL.canParse(v)) throw wrongShape(`heartbeat_url: invalid URL \`${v}\``);
  return v;
}

/** A `jwt_key` must hold keys the user API can use (spec §3.2): checked when it is set. */
async function jwtKey(obj: Record<string, unknown>): Promise<string | undefined> {
  const v = field.string(obj, 'jwt_key');
  if (v === undefined) return undefined;
  try {
    await parseJwtKeys(v);
  } catch (err) {
    throw new AdminRequestError('INVALID_JWT_KEY', `Invalid jwt_key: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  return v;
}

export interface CreateRequest {
  settings: NamespaceSettings;
  /** `dump_url`: a SQL dump to load into the new database (`file:` or `http(s):`). */
  dumpUrl: string | null;
}

/** `POST /v1/namespaces/:ns/create`: every field optional (spec §9). */
export async function parseCreateRequest(obj: Record<string, unknown>, base: NamespaceConfig): Promise<CreateRequest> {
  if (field.bool(obj, 'shared_schema') === true || field.string(obj, 'shared_schema_name') !== undefined) {
    throw new AdminRequestError('SHARED_SCHEMA', 'Shared schema usage error: shared schemas are not supported');
  }
  const pages = maxDbPages(obj);
  const mode = durability(obj);
  const settings: NamespaceSettings = {
    blockReads: base.blockReads,
    blockWrites: base.blockWrites,
    blockReason: base.blockReason,
    maxDbPages: pages ?? base.maxDbPages,
    heartbeatUrl: heartbeatUrl(obj) ?? null,
    bottomlessDbId: field.string(obj, 'bottomless_db_id') ?? null,
    jwtKey: (await jwtKey(obj)) ?? null,
    txnTimeoutS: field.uint(obj, 'txn_timeout_s') ?? null,
    allowAttach: field.bool(obj, 'allow_attach') ?? false,
    maxRowSize: field.uint(obj, 'max_row_size') ?? null,
    durabilityMode: mode ?? base.durabilityMode,
  };
  const dumpUrl = field.string(obj, 'dump_url') ?? null;
  return { settings, dumpUrl };
}

/**
 * `POST /v1/namespaces/:ns/config`: `block_reads`/`block_writes` are required; `block_reason`,
 * `allow_attach`, `txn_timeout_s` and `jwt_key` are overwritten (missing ⇒ cleared); `max_db_size`,
 * `heartbeat_url` and `durability_mode` change only when given (sqld's rules, spec §9).
 */
export async function applyConfigRequest(obj: Record<string, unknown>, current: NamespaceConfig): Promise<NamespaceSettings> {
  const blockReads = field.bool(obj, 'block_reads', true)!;
  const blockWrites = field.bool(obj, 'block_writes', true)!;
  const pages = maxDbPages(obj);
  const url = heartbeatUrl(obj);
  const mode = durability(obj);
  return {
    blockReads,
    blockWrites,
    blockReason: field.string(obj, 'block_reason') ?? null,
    maxDbPages: pages ?? current.maxDbPages,
    heartbeatUrl: url ?? current.heartbeatUrl,
    bottomlessDbId: current.bottomlessDbId,
    jwtKey: (await jwtKey(obj)) ?? null,
    txnTimeoutS: field.uint(obj, 'txn_timeout_s') ?? null,
    allowAttach: field.bool(obj, 'allow_attach') ?? false,
    maxRowSize: current.maxRowSize,
    durabilityMode: mode ?? current.durabilityMode,
  };
}

/** The maximum database size in bytes (SQLite's own limit when none is set). */
export function maxDbBytes(config: NamespaceConfig): number {
  return (config.maxDbPages ?? SQLITE_DEFAULT_MAX_PAGES) * PAGE_SIZE;
}

/** `GET /v1/namespaces/:ns/config` (sqld's field order; `max_db_size` human-readable). */
export function configJson(config: NamespaceConfig): Record<string, unknown> {
  return {
    block_reads: config.blockReads,
    block_writes: config.blockWrites,
    block_reason: config.blockReason,
    max_db_size: formatByteSize(maxDbBytes(config)),
    heartbeat_url: config.heartbeatUrl,
    jwt_key: config.jwtKey,
    allow_attach: config.allowAttach,
    txn_timeout_s: config.txnTimeoutS,
    durability_mode: config.durabilityMode,
  };
}
