/**
 * Restoring into a sqld data directory: `<data-dir>/dbs/<namespace>/data`. The data directory's
 * lock is held for the whole restore (a running server holds it: refused), an existing database
 * is replaced only when asked, and right before the new file takes its place the namespace's
 * replication log is invalidated (the server then starts a new log_id) and stale `-wal`, `-shm`
 * and journal files are removed. Directories the restore created are removed again on failure.
 */
import fs from 'node:fs';
import { DataDirLock } from '../../engine/data-dir-lock.js';
import { DataDirPaths } from '../../engine/data-dir.js';
import { invalidateLog } from '../../engine/log/log-recovery.js';
import { RestoreTargetExistsError } from './errors.js';
import { type RestoreOptions, type RestoreReport, restoreDatabase } from './restore.js';

export { namespaceOfDbName } from './names.js';

export interface DataDirRestoreOptions extends Omit<RestoreOptions, 'out' | 'replace' | 'beforeReplace'> {
  dataDir: string;
  namespace: string;
  /** Replace an existing database. */
  force: boolean;
}

/** The directories from `dir` up that do not exist yet (deepest first). */
function missingDirs(dirs: readonly string[]): string[] {
  return dirs.filter((d) => !fs.existsSync(d)).reverse();
}

export async function restoreIntoDataDir(opts: DataDirRestoreOptions): Promise<RestoreReport> {
  const data = new DataDirPaths(opts.dataDir);
  const ns = data.namespace(opts.namespace);
  const created = missingDirs([data.root, data.dbs, ns.dir]);
  const lock = DataDirLock.acquire(opts.dataDir);
  let ok = false;
  try {
    if (!opts.force && fs.existsSync(ns.db)) throw new RestoreTargetExistsError(ns.db);
    const { dataDir: _d, namespace: _n, force, ...rest } = opts;
    const report = await restoreDatabase({
      ...rest,
      out: ns.db,
      replace: force,
      beforeReplace: () => {
        invalidateLog(ns);
        fs.rmSync(ns.journal, { force: true });
      },
    });
    ok = true;
    return report;
  } finally {
    lock.release();
    if (!ok) {
      for (const d of created) {
        try {
          fs.rmdirSync(d);
        } catch {
          // not empty: something else lives there now
        }
      }
    }
  }
}
