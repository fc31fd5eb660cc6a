/**
 * sqld settings that `serve` does not honour (yet), so that someone who starts us with sqld's
 * flags or environment learns it at once instead of running something other than they asked for:
 *
 * - such a **flag** stops the start (exit 2) with one line saying so;
 * - such a **variable** that would change the server's role or durability (a replica, backups,
 *   encryption) stops the start the same way: a "replica" that takes writes, or a "backed-up"
 *   primary with no backup, is worse than no server;
 * - any other `SQLD_*` / `LIBSQL_*` variable nothing reads is named in one warning at start-up.
 *
 * Names and variables are those of sqld's `--help` (the README's flag table lists them all, supported or not).
 */
import { ConfigError } from '../errors.js';

/** A sqld setting we do not support: its flag, its variable, and what honouring it would change. */
export interface UnsupportedSetting {
  flag: string;
  /** sqld's environment variable for it, if it has one. */
  env?: string;
  /** True when ignoring it would silently change the server's role or durability. */
  changesRole?: boolean;
  /** Flags without a value (clap switches); any other flag takes one. */
  switch?: boolean;
  /** Why it is not supported, or what to use instead (one short clause). */
  why: string;
}

const LATER = 'not supported yet';
/** better-sqlite3 is built with SQLITE_DEFAULT_MEMSTATUS=0: SQLite counts no memory, so its heap limits never trigger (test/unit/sqlite-build.test.ts). */
const HEAP_LIMITS = 'better-sqlite3 is built with SQLite memory accounting off, so a heap limit would never take effect';

/** sqld's `serve` settings we do not honour, as its `--help` names them. */
export const UNSUPPORTED_SQLD_SETTINGS: readonly UnsupportedSetting[] = [
  { flag: 'http-primary-url', env: 'SQLD_HTTP_PRIMARY_URL', changesRole: true, why: 'replicas follow their primary over gRPC: use --primary-grpc-url' },
  { flag: 'migrate-bottomless', env: 'LIBSQL_MIGRATE_BOTTOMLESS', switch: true, changesRole: true, why: 'libsql-wal is not supported' },
  { flag: 'encryption-key', env: 'SQLD_ENCRYPTION_KEY', changesRole: true, why: 'encryption at rest is not supported on stock SQLite' },
  { flag: 'backup-meta-store', env: 'SQLD_BACKUP_META_STORE', switch: true, changesRole: true, why: `backups of the meta store are ${LATER}` },
  { flag: 'meta-store-access-key-id', env: 'SQLD_META_STORE_ACCESS_KEY_ID', why: `backups of the meta store are ${LATER}` },
  { flag: 'meta-store-secret-access-key', env: 'SQLD_META_STORE_SECRET_ACCESS', why: `backups of the meta store are ${LATER}` },
  { flag: 'meta-store-session-token', env: 'SQLD_META_STORE_SESSION_TOKEN', why: `backups of the meta store are ${LATER}` },
  { flag: 'meta-store-region', env: 'SQLD_META_STORE_REGION', why: `backups of the meta store are ${LATER}` },
  { flag: 'meta-store-backup-id', env: 'SQLD_META_STORE_BACKUP_ID', why: `backups of the meta store are ${LATER}` },
  { flag: 'meta-store-bucket-name', env: 'SQLD_META_STORE_BUCKET_NAME', why: `backups of the meta store are ${LATER}` },
  { flag: 'meta-store-backup-interval-s', env: 'SQLD_META_STORE_BACKUP_INTERVAL_S', why: `backups of the meta store are ${LATER}` },
  { flag: 'meta-store-bucket-endpoint', env: 'SQLD_META_STORE_BUCKET_ENDPOINT', why: `backups of the meta store are ${LATER}` },
  { flag: 'meta-store-destroy-on-error', env: 'SQLD_META_STORE_DESTROY_ON_ERROR', switch: true, why: `backups of the meta store are ${LATER}` },
  { flag: 'sync-from-storage', env: 'LIBSQL_SYNC_FROM_STORAGE', switch: true, changesRole: true, why: 'the libsql storage server is not supported' },
  { flag: 'storage-server-address', env: 'LIBSQL_STORAGE_SERVER_ADDR', why: 'the libsql storage server is not supported' },
  { flag: 'force-load-wals', switch: true, why: 'libsql-wal is not supported' },
  { flag: 'sync-conccurency', env: 'LIBSQL_SYNC_CONCCURENCY', why: 'the libsql storage server is not supported' },
  { flag: 'soft-heap-limit-mb', env: 'SQLD_SOFT_HEAP_LIMIT_MB', why: HEAP_LIMITS },
  { flag: 'hard-heap-limit-mb', env: 'SQLD_HARD_HEAP_LIMIT_MB', why: HEAP_LIMITS },
  { flag: 'disable-intelligent-throttling', env: 'SQLD_DISABLE_INTELLIGENT_THROTTLING', switch: true, why: LATER },
  { flag: 'allow-metastore-recovery', env: 'SQLD_ALLOW_METASTORE_RECOVERY', switch: true, why: 'there is no older meta store to recover from' },
  { flag: 'enable-deadlock-monitor', switch: true, why: LATER },
  { flag: 'disable-metrics', env: 'LIBSQL_DISABLE_METRICS', switch: true, why: LATER },
];

/** Prefixes of sqld's (and bottomless') environment variables. */
const SQLD_PREFIXES = ['SQLD_', 'LIBSQL_'];

/** clap reads a switch's variable as false when it is one of these (and as true otherwise). */
const FALSE_VALUES = new Set(['', '0', 'false', 'no', 'off']);

function isSet(setting: UnsupportedSetting, value: string): boolean {
  return setting.switch ? !FALSE_VALUES.has(value.trim().toLowerCase()) : value !== '';
}

/** Refuses an unsupported sqld flag that was given (flags: the parsed values of the hidden flags). */
export function refuseUnsupportedFlags(given: Record<string, unknown>): void {
  for (const s of UNSUPPORTED_SQLD_SETTINGS) {
    const v = given[s.flag];
    if (v === undefined || v === false) continue;
    throw new ConfigError('CONFIG_UNSUPPORTED_FLAG', `--${s.flag} is a sqld flag libsqlctl does not support: ${s.why}`, {
      hint: 'leave it out, or see `libsqlctl serve --help` for what is supported',
    });
  }
}

/**
 * Checks the environment: throws for a variable that would change the role or durability, returns
 * the names of every other `SQLD_*` / `LIBSQL_*` variable that nothing reads (`read`: those we do).
 */
export function checkSqldEnvironment(env: NodeJS.ProcessEnv, read: ReadonlySet<string>): string[] {
  for (const s of UNSUPPORTED_SQLD_SETTINGS) {
    const value = s.env === undefined ? undefined : env[s.env];
    if (!s.changesRole || value === undefined || !isSet(s, value)) continue;
    throw new ConfigError('CONFIG_UNSUPPORTED_ENV', `${s.env} is set, but ${s.why}: libsqlctl would run as something other than asked for`, {
      hint: `unset ${s.env}`,
    });
  }
  return Object.keys(env)
    .filter((name) => SQLD_PREFIXES.some((p) => name.startsWith(p)) && !read.has(name))
    .sort();
}
