/**
 * Every file and folder of the data directory (`--db-path`), named in one place. Nothing else in
 * the code base joins paths inside the data directory.
 *
 * ```
 * <db-path>/.libsqlctl.lock            one server per data directory (pid)
 * <db-path>/metastore/namespaces.json  the namespace registry
 * <db-path>/script_backup/             hard links of snapshots pending --snapshot-exec
 * <db-path>/dbs/<ns>/data (+ -wal, -shm) the SQLite database (primary: WAL mode; replica: rollback mode)
 * <db-path>/dbs/<ns>/wallog            primary: sqld's replication log
 * <db-path>/dbs/<ns>/wallog.new        primary: a compaction's new log before the swap
 * <db-path>/dbs/<ns>/wallog-capture    primary: where the WAL sits in the log, database identity
 * <db-path>/dbs/<ns>/snapshots/        primary: compacted log ranges
 * <db-path>/dbs/<ns>/to_compact/       primary: old logs waiting to become snapshots
 * <db-path>/dbs/<ns>/client_wal_index  replica: the last applied frame (sqld's 32-byte format)
 * <db-path>/dbs/<ns>/replica-redo      replica: the transaction being applied (crash safety)
 * <db-path>/dbs/<ns>/.sentinel         present while the namespace is open
 * <db-path>/dbs/<ns>/bottomless/state.json          primary: the bottomless uploader's state
 * <db-path>/dbs/<ns>/bottomless/staging/<gen>/<obj> primary: batches and snapshots not yet uploaded
 * ```
 */
import path from 'node:path';

export const LOCK_FILE = '.libsqlctl.lock';

/** Paths of one namespace's directory. */
export class NamespacePaths {
  constructor(readonly dir: string) {}

  get db(): string {
    return path.join(this.dir, 'data');
  }
  get wal(): string {
    return `${this.db}-wal`;
  }
  get shm(): string {
    return `${this.db}-shm`;
  }
  /** SQLite's rollback journal (replica role). */
  get journal(): string {
    return `${this.db}-journal`;
  }
  get wallog(): string {
    return path.join(this.dir, 'wallog');
  }
  get wallogNew(): string {
    return path.join(this.dir, 'wallog.new');
  }
  get captureState(): string {
    return path.join(this.dir, 'wallog-capture');
  }
  get snapshots(): string {
    return path.join(this.dir, 'snapshots');
  }
  snapshot(fileName: string): string {
    return path.join(this.snapshots, fileName);
  }
  get toCompact(): string {
    return path.join(this.dir, 'to_compact');
  }
  pendingCompaction(name: string): string {
    return path.join(this.toCompact, name);
  }
  get clientWalIndex(): string {
    return path.join(this.dir, 'client_wal_index');
  }
  /**
   * The replica's two redo files: batches alternate between them, so the last applied batch's file
   * is intact while the next one is written (docs/REPLICA_APPLIER.md).
   */
  get replicaRedoSlots(): readonly [string, string] {
    return [path.join(this.dir, 'replica-redo'), path.join(this.dir, 'replica-redo-b')];
  }
  /** A snapshot being downloaded from the primary (replica role); removed once applied. */
  get replicaSnapshot(): string {
    return path.join(this.dir, 'replica-snapshot.tmp');
  }
  get sentinel(): string {
    return path.join(this.dir, '.sentinel');
  }
  /** The bottomless uploader's directory (docs/BOTTOMLESS.md "Uploader"). */
  get bottomless(): string {
    return path.join(this.dir, 'bottomless');
  }
  get bottomlessState(): string {
    return path.join(this.bottomless, 'state.json');
  }
  /** Objects staged for upload, one folder per generation. */
  get bottomlessStaging(): string {
    return path.join(this.bottomless, 'staging');
  }
  bottomlessStagingDir(generation: string): string {
    return path.join(this.bottomlessStaging, generation);
  }
  bottomlessStagingFile(generation: string, name: string): string {
    return path.join(this.bottomlessStaging, generation, name);
  }
}

/** Paths of a data directory. */
export class DataDirPaths {
  readonly root: string;

  constructor(dbPath: string) {
    this.root = path.resolve(dbPath);
  }

  get lockFile(): string {
    return path.join(this.root, LOCK_FILE);
  }
  get metastore(): string {
    return path.join(this.root, 'metastore');
  }
  get registry(): string {
    return path.join(this.metastore, 'namespaces.json');
  }
  get scriptBackup(): string {
    return path.join(this.root, 'script_backup');
  }
  /** sqld's name for a snapshot's hard link: `<ns>:<log_id>:<start as 20 hex>-<end as 20 hex>.snap`. */
  static scriptBackupLink(dir: string, namespace: string, logId: string, start: bigint, end: bigint): string {
    const hex20 = (n: bigint): string => n.toString(16).padStart(20, '0');
    return path.join(dir, `${namespace}:${logId}:${hex20(start)}-${hex20(end)}.snap`);
  }
  get dbs(): string {
    return path.join(this.root, 'dbs');
  }
  namespace(name: string): NamespacePaths {
    return new NamespacePaths(path.join(this.dbs, name));
  }
}
