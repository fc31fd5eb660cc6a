/**
 * The resolution of the flags every `bottomless` command shares (bottomless-flags.ts declares
 * them): the store from `-e`/`-b` over `LIBSQL_BOTTOMLESS_*`, the database name from `-n` or
 * `--db-name` (else the server's default namespace, `ns-<LIBSQL_BOTTOMLESS_DATABASE_ID>:default`),
 * and the database file in the data directory. Nothing here imports oclif: `bottomless restore`
 * runs without it (fast-restore.ts).
 */
import type { BackupStorage } from '../backup/storage/storage.js';
import type { BottomlessConfig } from '../config/bottomless-config.js';

export interface BottomlessFlagValues {
  endpoint?: string | undefined;
  bucket?: string | undefined;
  database: string;
  namespace?: string | undefined;
  'db-name'?: string | undefined;
}

export interface BottomlessTarget {
  config: BottomlessConfig;
  /** The database name: the key prefix of its objects. */
  db: string;
  /** Its namespace (the data directory's `dbs/<namespace>`). */
  namespace: string;
  dataDir: string;
  /** `<dataDir>/dbs/<namespace>/data`. */
  dbFile: string;
}

/** Validates the shared flags and the environment into one target. */
export async function resolveBottomlessTarget(flags: BottomlessFlagValues): Promise<BottomlessTarget> {
  const [{ readBottomlessEnv, resolveBottomlessConfig }, { sqldDbName }, { namespaceOfDbName }, { DataDirPaths }, { ConfigError }] = await Promise.all([
    import('../config/bottomless-config.js'),
    import('../backup/format/layout.js'),
    import('../backup/restore/names.js'),
    import('../engine/data-dir.js'),
    import('../errors.js'),
  ]);
  const badName = (flag: string, value: string, why: string): Error =>
    new ConfigError('CONFIG_BOTTOMLESS_NAMESPACE', `${flag} ${JSON.stringify(value)}: ${why}`, { hint: 'e.g. -n ns-<db_id>:default, or --db-name default' });
  const config = resolveBottomlessConfig(readBottomlessEnv(), {
    ...(flags.endpoint === undefined ? {} : { endpoint: flags.endpoint }),
    ...(flags.bucket === undefined ? {} : { bucket: flags.bucket }),
  });
  let db: string;
  let flag: string;
  if (flags.namespace !== undefined) {
    db = flags.namespace.trim();
    flag = '-n';
  } else {
    const name = (flags['db-name'] ?? 'default').trim();
    if (name === '' || name.includes(':')) throw badName('--db-name', name, 'a namespace is a non-empty name without ":"');
    db = sqldDbName(config.databaseId, name);
    flag = '--db-name';
  }
  if (db === '' || db.includes('/')) throw badName(flag, db, 'a database name is non-empty and has no "/"');
  const namespace = namespaceOfDbName(db);
  if (namespace === '' || /[/\\\0]/.test(namespace) || /^\.+$/.test(namespace)) throw badName(flag, db, `its namespace ${JSON.stringify(namespace)} cannot be a directory name`);
  const dataDir = flags.database;
  return { config, db, namespace, dataDir, dbFile: new DataDirPaths(dataDir).namespace(namespace).db };
}

/**
 * The store of a target; close() it when done. The S3 backend (and with it the AWS SDK, slow to
 * load) is imported only when a command actually talks to S3.
 */
export async function openTargetStorage(target: BottomlessTarget): Promise<BackupStorage> {
  const { openStorage } = await import('../backup/storage/open-storage.js');
  return await openStorage(target.config.target);
}

/** `-g`: a generation id as `bottomless ls` prints it. */
export async function parseGenerationFlag(value: string | undefined): Promise<string | undefined> {
  if (value === undefined) return undefined;
  const [{ isGenerationId }, { ConfigError }] = await Promise.all([import('../backup/format/generation-id.js'), import('../errors.js')]);
  const gen = value.trim().toLowerCase();
  if (!isGenerationId(gen)) {
    throw new ConfigError('CONFIG_BOTTOMLESS_GENERATION', `-g ${JSON.stringify(value)}: not a generation id`, { hint: 'generation ids are version-7 UUIDs as `bottomless ls` prints them' });
  }
  return gen;
}

/** `--utc-time`. */
export async function parseTimeFlag(value: string | undefined, flag = '--utc-time'): Promise<Date | undefined> {
  return value === undefined ? undefined : (await import('../backup/restore/time.js')).parseUtcTime(value, flag);
}

/** A date flag (`--older-than`, `--newer-than`): `YYYY-MM-DD`, UTC. */
export async function parseDateFlag(value: string | undefined, flag: string): Promise<Date | undefined> {
  return value === undefined ? undefined : (await import('../backup/restore/time.js')).parseUtcDate(value, flag);
}

/** Runs `fn` with the target's store open, closing it afterwards. */
export async function withStorage<T>(target: BottomlessTarget, fn: (storage: BackupStorage) => Promise<T>): Promise<T> {
  const storage = await openTargetStorage(target);
  try {
    return await fn(storage);
  } finally {
    await storage.close();
  }
}

/** JSON with dates as ISO-8601 strings and bigints as decimal strings. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2);
}
