/**
 * What the admin API's stats and listing routes read about namespaces, behind one small interface
 * so later readers (Prometheus metrics, the admin shell's list, replica and backup lag) share it.
 * Reading never opens a namespace: a closed one reports its file size and zero counters.
 */
import fs from 'node:fs';
import type { BackupStatus } from '../../backup/uploader/options.js';
import type { NamespaceConfig } from '../../engine/namespace-config.js';
import type { NamespaceStatsSnapshot } from '../../engine/namespace-stats.js';
import type { Namespaces } from '../../engine/namespaces.js';
import type { ReplicationStatus } from '../replication/replicator.js';

export interface NamespaceStatus {
  readonly name: string;
  /** Its database is open in this process. */
  readonly open: boolean;
  readonly storageBytes: number;
  /** Last logged (primary) or applied (replica) frame number; null when none or closed. */
  readonly replicationIndex: bigint | null;
  readonly stats: NamespaceStatsSnapshot;
  readonly config: NamespaceConfig;
  /** Frames committed but not yet durable in the backup store; null without backups (or while closed). */
  readonly backupLagFrames: number | null;
  /** A replica's frames behind its primary (0 when caught up or unknown); null on a primary (or while closed). */
  readonly replicaLagFrames: number | null;
  /** Whether a replica's stream from its primary is up; null on a primary (or while closed). */
  readonly replicaConnected: boolean | null;
}

/** Where the backup and replication figures come from (the server's uploaders and replicators). */
export interface StatusReaders {
  backupStatus?: (name: string) => BackupStatus | null;
  replicationStatus?: (name: string) => ReplicationStatus | null;
}

export interface NamespaceStatsSource {
  /** Every existing namespace, sorted. */
  names(): string[];
  exists(name: string): boolean;
  status(name: string): NamespaceStatus;
  resetTopQueries(name: string): void;
  resetSlowestQueries(name: string): void;
}

function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

/** The stats source over the engine's namespaces. */
export function namespaceStatsSource(
  namespaces: Namespaces,
  dataDir: { namespace(name: string): { db: string } },
  readers: StatusReaders = {},
): NamespaceStatsSource {
  return {
    names: () => namespaces.names(),
    exists: (name) => namespaces.exists(name),
    status: (name) => {
      const db = namespaces.peek(name);
      let storageBytes: number;
      try {
        storageBytes = db ? db.storageBytes() : fileSize(dataDir.namespace(name).db);
      } catch {
        storageBytes = db ? fileSize(db.dbFile) : 0;
      }
      const replication = readers.replicationStatus?.(name) ?? null;
      return {
        name,
        open: db !== undefined,
        storageBytes,
        replicationIndex: db?.replicationIndex() ?? null,
        stats: namespaces.statsOf(name).snapshot(),
        config: namespaces.config(name),
        backupLagFrames: readers.backupStatus?.(name)?.uploadLagFrames ?? null,
        replicaLagFrames: replication === null ? null : Number(replication.lagFrames),
        replicaConnected: replication?.connected ?? null,
      };
    },
    resetTopQueries: (name) => namespaces.statsOf(name).resetTop(),
    resetSlowestQueries: (name) => namespaces.statsOf(name).resetSlowest(),
  };
}
