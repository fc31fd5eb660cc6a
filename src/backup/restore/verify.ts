/**
 * Verify: a full restore into a private temp directory (checksums always on, gaps never allowed),
 * then the completeness checks a restore to a point in time does not need: every generation of
 * the chain must reach its durable marker. The verdict names the object or frame that is wrong;
 * the checks that could not be made (a backup made by sqld has no digest, commit times or marker)
 * are listed as skipped. The temp directory is removed whatever happens.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CorruptBackupError } from '../format/errors.js';
import { BackupGapError, BackupUnusableError, RestoreIntegrityError } from './errors.js';
import { type CheckName, type RestoreCheck, type RestoreOptions, type RestoreReport, restoreDatabase } from './restore.js';

export interface VerifyOptions extends Omit<RestoreOptions, 'out' | 'replace' | 'allowGaps' | 'verifyCrc' | 'beforeReplace' | 'readEveryObject'> {
  /** Where the temp directory goes (default: the system's temp directory). */
  tmpDir?: string;
}

export interface VerifyReport {
  ok: boolean;
  /** The generation verified, when one was chosen. */
  generation: string | null;
  /** What is wrong, one sentence each (empty when ok). */
  problems: string[];
  checks: RestoreCheck[];
  /** The restore's report when it completed. */
  restore: RestoreReport | null;
}

function failedCheck(err: Error): CheckName {
  if (err instanceof BackupGapError) return err.gap.kind === 'lost-tail' ? 'durable marker' : 'contiguous frames';
  if (err instanceof RestoreIntegrityError) return 'integrity check';
  if (err instanceof CorruptBackupError) {
    if (/\/db\.(gz|zstd|raw)$/.test(err.key)) return 'snapshot digest';
    if (err.key.endsWith('/.libsqlctl-durable')) return 'durable marker';
    return /checksum/.test(err.message) ? 'checksum chain' : 'contiguous frames';
  }
  return 'contiguous frames';
}

/** Verifies a backup; resolves with the verdict (rejects only when there is nothing to verify or the store fails). */
export async function verifyBackup(opts: VerifyOptions): Promise<VerifyReport> {
  const dir = fs.mkdtempSync(path.join(opts.tmpDir ?? os.tmpdir(), 'libsqlctl-verify-'));
  try {
    const { tmpDir: _tmp, ...rest } = opts;
    let report: RestoreReport;
    try {
      report = await restoreDatabase({ ...rest, out: path.join(dir, 'data'), allowGaps: false, verifyCrc: true, readEveryObject: true });
    } catch (err) {
      const understood = err instanceof BackupGapError || err instanceof CorruptBackupError || err instanceof RestoreIntegrityError || err instanceof BackupUnusableError;
      if (!understood) throw err;
      return {
        ok: false,
        generation: opts.generation ?? null,
        problems: [err.message],
        checks: [{ name: failedCheck(err), status: 'failed', detail: err.message }],
        restore: null,
      };
    }
    const problems = report.laterGaps.map((g) => `generation ${g.generation}: ${g.detail}`);
    const checks = report.checks.map((c): RestoreCheck => {
      const later = report.laterGaps.filter((g) => (c.name === 'durable marker') === (g.kind === 'lost-tail'));
      return later.length > 0 && (c.name === 'durable marker' || c.name === 'contiguous frames') ? { ...c, status: 'failed', detail: `after the point restored to: ${later[0]!.detail}` } : c;
    });
    return { ok: problems.length === 0, generation: report.generation, problems, checks, restore: report };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
