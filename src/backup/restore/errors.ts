/**
 * Errors of restore, verify and the bottomless commands. Each has a stable code; all but the
 * configuration ones end a command with exit code 1 (base-command.ts).
 */
import { LibsqlctlError, NotFoundError } from '../../errors.js';

/** No generation matches (none at all, none at or before a time, or the named one is empty). */
export class BackupNotFoundError extends NotFoundError {
  constructor(message: string, hint?: string) {
    super('BACKUP_NOT_FOUND', message, hint === undefined ? undefined : { hint });
  }
}

/** The generation (or one the restore needs) is at or before the database's tombstone. */
export class BackupTombstonedError extends LibsqlctlError {
  constructor(message: string) {
    super('BACKUP_TOMBSTONED', message, { hint: 'restore a generation created after the tombstone, or wait until the deletion has finished' });
  }
}

/** Where frames are missing (or overlap) in one generation of a chain. */
export interface FrameGap {
  generation: string;
  /** A hole between batches, batches that overlap, batches without `.meta`, or a tail our durable marker says is lost. */
  kind: 'hole' | 'overlap' | 'no-meta' | 'lost-tail';
  /** The first frame that cannot be applied. */
  fromFrame: number;
  /** The last missing frame when known (a hole between two batches, a lost tail), else null. */
  toFrame: number | null;
  /** What is wrong, in words (names the objects on both sides when there are any). */
  detail: string;
}

/** Frames are missing in a generation the restore needs. */
export class BackupGapError extends LibsqlctlError {
  constructor(readonly gap: FrameGap) {
    super('BACKUP_GAP', `generation ${gap.generation}: ${gap.detail}`, {
      hint: 'restore with --allow-gaps to get the last consistent state before the gap, or pick an older point with -g / --utc-time',
    });
  }
}

/** The backup cannot be restored as it stands (no snapshot to start from, a chain too long). */
export class BackupUnusableError extends LibsqlctlError {
  constructor(message: string, hint?: string) {
    super('BACKUP_UNUSABLE', message, hint === undefined ? undefined : { hint });
  }
}

/** The restored file fails SQLite's integrity check. */
export class RestoreIntegrityError extends LibsqlctlError {
  constructor(detail: string) {
    super('RESTORE_INTEGRITY_FAILED', `the restored database fails PRAGMA integrity_check: ${detail}`);
  }
}

/** The destination exists and replacing it was not asked for. */
export class RestoreTargetExistsError extends LibsqlctlError {
  constructor(path: string) {
    super('RESTORE_TARGET_EXISTS', `${path} already exists`, { hint: 'pass --force to replace it, or restore elsewhere with -o FILE' });
  }
}

/** verify found the backup incomplete or damaged. */
export class VerifyFailedError extends LibsqlctlError {
  constructor(message: string) {
    super('BACKUP_VERIFY_FAILED', message, { hint: 'restore with --allow-gaps to get what is consistent, or verify an older generation (-g, --utc-time)' });
  }
}
