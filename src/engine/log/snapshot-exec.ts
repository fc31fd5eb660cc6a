import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { DataDirPaths } from '../data-dir.js';
import type { Logger } from '../logger.js';

export interface SnapshotExecArgs {
  snapshotPath: string;
  /** `<db-path>/script_backup/` */
  scriptBackupDir: string;
  namespace: string;
  logId: string;
  start: bigint;
  end: bigint;
  logger: Logger;
}

const MAX_ATTEMPTS = 5;

function runOnce(cmd: string, args: string[], logger: Logger): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: 'inherit' });
    child.once('error', (err) => {
      logger.warn(`snapshot-exec: cannot run ${cmd}: ${err.message}`);
      resolve(-1);
    });
    child.once('exit', (code) => resolve(code ?? -1));
  });
}

/**
 * `--snapshot-exec`: runs `cmd <snapshot> <namespace> <start> <end> <log_id>` on a hard link of the new
 * snapshot under `<db-path>/script_backup/` (so compaction may delete the original), retrying a
 * non-zero exit with backoff; the link is removed once the command succeeded.
 */
export async function runSnapshotExec(cmd: string, a: SnapshotExecArgs): Promise<void> {
  const dir = a.scriptBackupDir;
  fs.mkdirSync(dir, { recursive: true });
  const link = DataDirPaths.scriptBackupLink(dir, a.namespace, a.logId, a.start, a.end);
  fs.rmSync(link, { force: true });
  fs.linkSync(a.snapshotPath, link);
  const args = [link, a.namespace, a.start.toString(), a.end.toString(), a.logId];
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const code = await runOnce(cmd, args, a.logger);
    if (code === 0) {
      fs.rmSync(link, { force: true });
      return;
    }
    a.logger.warn(`snapshot-exec: ${cmd} exited with ${code} (attempt ${attempt}/${MAX_ATTEMPTS})`);
    if (attempt < MAX_ATTEMPTS) await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
  }
}
