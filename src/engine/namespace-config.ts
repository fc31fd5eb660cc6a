/**
 * A namespace's settings (sqld's `DatabaseConfig`, spec §6.4), as the engine enforces them and as
 * the registry stores them. The admin API's JSON shapes are translated in
 * src/server/admin/config-json.ts; nothing else reads or writes the stored form.
 *
 * Enforced by the engine: `blockReads` / `blockWrites` (+ `blockReason`) per statement,
 * `maxDbPages` (SQLite's `max_page_count` on client connections: SQLITE_FULL past it),
 * `txnTimeoutS` (the write lock's steal timeout), `durabilityMode` (`PRAGMA synchronous`).
 * `jwtKey` is honoured by the user API's authentication (src/server/auth/namespace-auth.ts).
 * Stored only: `allowAttach` (ATTACH stays refused), `heartbeatUrl`, `bottomlessDbId`, `maxRowSize`.
 */

export type DurabilityMode = 'relaxed' | 'strong' | 'extra' | 'off';

export const DURABILITY_MODES: readonly DurabilityMode[] = ['relaxed', 'strong', 'extra', 'off'];

export interface NamespaceConfig {
  readonly blockReads: boolean;
  readonly blockWrites: boolean;
  /** Appended to the BLOCKED error (`Operation was blocked: <reason>`). */
  readonly blockReason: string | null;
  /** Largest database in 4096-byte pages; null = SQLite's own limit. */
  readonly maxDbPages: number | null;
  readonly heartbeatUrl: string | null;
  readonly bottomlessDbId: string | null;
  /** Per-namespace JWT key(s), PEM or raw base64url (spec §3.2), instead of the server's auth. */
  readonly jwtKey: string | null;
  /** Write-lock steal timeout in seconds; null = the server's (5 s). */
  readonly txnTimeoutS: number | null;
  readonly allowAttach: boolean;
  readonly maxRowSize: number | null;
  readonly durabilityMode: DurabilityMode;
  /**
   * Bumped by every change (a new namespace starts at 1). Replication turns it into a new session
   * token so replicas handshake again (spec §6.5); connections re-read their settings when it moves.
   */
  readonly version: number;
}

export const DEFAULT_NAMESPACE_CONFIG: NamespaceConfig = Object.freeze({
  blockReads: false,
  blockWrites: false,
  blockReason: null,
  maxDbPages: null,
  heartbeatUrl: null,
  bottomlessDbId: null,
  jwtKey: null,
  txnTimeoutS: null,
  allowAttach: false,
  maxRowSize: null,
  durabilityMode: 'relaxed',
  version: 1,
});

/** The settings a change may set (everything but the version, which the registry bumps). */
export type NamespaceSettings = Omit<NamespaceConfig, 'version'>;

/** `PRAGMA synchronous` for a durability mode (spec §4.7). */
export function synchronousFor(mode: DurabilityMode): 'NORMAL' | 'FULL' | 'EXTRA' | 'OFF' {
  switch (mode) {
    case 'relaxed':
      return 'NORMAL';
    case 'strong':
      return 'FULL';
    case 'extra':
      return 'EXTRA';
    case 'off':
      return 'OFF';
  }
}

function str(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : null;
}

/** Reads the registry's stored form; missing or malformed fields take their defaults. */
export function configFromRecord(record: Readonly<Record<string, unknown>>): NamespaceConfig {
  const d = DEFAULT_NAMESPACE_CONFIG;
  const mode = record['durability_mode'];
  return {
    blockReads: record['block_reads'] === true,
    blockWrites: record['block_writes'] === true,
    blockReason: str(record['block_reason']),
    maxDbPages: num(record['max_db_pages']),
    heartbeatUrl: str(record['heartbeat_url']),
    bottomlessDbId: str(record['bottomless_db_id']),
    jwtKey: str(record['jwt_key']),
    txnTimeoutS: num(record['txn_timeout_s']),
    allowAttach: record['allow_attach'] === true,
    maxRowSize: num(record['max_row_size']),
    durabilityMode: DURABILITY_MODES.includes(mode as DurabilityMode) ? (mode as DurabilityMode) : d.durabilityMode,
    version: num(record['config_version']) ?? d.version,
  };
}

/** The registry's stored form (snake_case, as sqld names the fields). */
export function configToRecord(c: NamespaceConfig): Record<string, unknown> {
  return {
    block_reads: c.blockReads,
    block_writes: c.blockWrites,
    block_reason: c.blockReason,
    max_db_pages: c.maxDbPages,
    heartbeat_url: c.heartbeatUrl,
    bottomless_db_id: c.bottomlessDbId,
    jwt_key: c.jwtKey,
    txn_timeout_s: c.txnTimeoutS,
    allow_attach: c.allowAttach,
    max_row_size: c.maxRowSize,
    durability_mode: c.durabilityMode,
    config_version: c.version,
  };
}
