/**
 * `POST /v1/namespaces/:from/fork/:to` (spec §9, docs/ADMIN.md): a new namespace `to` with the
 * source's settings (its config version starts fresh) and a copy of the source's database — as it
 * is now, or, with `{"timestamp": …}`, as the source's bottomless backup had it then.
 *
 * The copy is written into the new namespace's empty folder by `Namespaces.create`'s `seed`, before
 * the namespace opens; from there on it is a database with no replication log, as after a restore:
 * the primary role starts a new log (new `log_id`) from it and, with backups on, its uploader starts
 * a fresh generation with a snapshot under the new namespace's own database name. A failure anywhere
 * leaves no folder and no registry entry (Namespaces.create).
 */
import type Database from 'better-sqlite3';
import { LibsqlctlError, NotFoundError } from '../../errors.js';
import type { NamespacePaths } from '../../engine/data-dir.js';
import { errorMessage } from '../../engine/logger.js';
import type { NamespaceDb } from '../../engine/namespace-db.js';
import { checkNamespaceName } from '../../engine/namespace-name.js';
import { NamespaceExistsError, type Namespaces } from '../../engine/namespaces.js';
import { BackupNotFoundError, BackupTombstonedError } from '../../backup/restore/errors.js';
import { parseUtcTime } from '../../backup/restore/time.js';
import type { BackupAdmin } from '../context.js';
import { field, wrongShape } from './admin-body.js';

/** Pages copied per event-loop turn (4 MiB): other requests run between the steps. */
const COPY_PAGES_PER_STEP = 1024;

/** sqld's `NaiveDateTime`: `YYYY-MM-DDTHH:MM:SS[.fff]`, UTC without a zone (a trailing `Z` is allowed too). */
const TIMESTAMP_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z?$/;

/** A fork that cannot be made: sqld's `Failed to fork database: …`, with the status it is answered with. */
export class ForkError extends LibsqlctlError {
  constructor(
    readonly status: 400 | 500,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super('FORK_FAILED', `Failed to fork database: ${reason}`, options);
  }
}

export interface ForkContext {
  namespaces: Namespaces;
  isReplica: boolean;
  /** Point-in-time restores from the backups; null without bottomless. */
  backups: Pick<BackupAdmin, 'restoreAt'> | null;
}

/** The body's point in time, or null for a fork of the database as it is now (no body, `{}`, `null`). */
export function forkTime(body: Record<string, unknown>): Date | null {
  const text = field.string(body, 'timestamp');
  if (text === undefined) return null;
  const shape = 'timestamp: expected a UTC time such as 2024-05-01T12:00:00 or 2024-05-01T12:00:00.250';
  if (!TIMESTAMP_RE.test(text)) throw wrongShape(`${shape}, got ${JSON.stringify(text)}`);
  try {
    return parseUtcTime(text.endsWith('Z') ? text.slice(0, -1) : text, 'timestamp');
  } catch {
    // the shape fits but the calendar does not (2024-02-30, 25:00:00)
    throw wrongShape(`${shape}, got ${JSON.stringify(text)}`);
  }
}

/**
 * Creates `to` as a fork of `from`. Checks in sqld's order: the destination's name, the source
 * exists (404), the destination does not (400), a replica forks nothing (400), a point in time needs
 * the backups (500).
 */
export async function forkNamespace(ctx: ForkContext, from: string, to: string, time: Date | null): Promise<void> {
  const { namespaces } = ctx;
  checkNamespaceName(to);
  if (!namespaces.exists(from)) throw new NotFoundError('NAMESPACE_DOESNT_EXIST', `Namespace \`${from}\` doesn't exist`);
  if (namespaces.exists(to)) throw new NamespaceExistsError(to);
  if (ctx.isReplica) throw new ForkError(400, 'a replica cannot fork: its namespaces come from the primary (fork on the primary)');
  const settings = namespaces.config(from);
  let seed: (paths: NamespacePaths) => Promise<void>;
  if (time === null) {
    // Resolved (opened) when the copy starts: a namespace resolved a moment ago is not unloaded.
    seed = async (paths) => copyDatabase(await namespaces.get(from), paths.db);
  } else {
    const backups = ctx.backups;
    if (backups === null) throw new ForkError(500, 'backup service not configured');
    seed = (paths) => restoreInto(backups, from, time, paths);
  }
  const { version: _version, ...fresh } = settings;
  await namespaces.create(to, fresh, undefined, seed);
}

async function restoreInto(backups: Pick<BackupAdmin, 'restoreAt'>, from: string, time: Date, paths: NamespacePaths): Promise<void> {
  try {
    await backups.restoreAt(from, time, paths);
  } catch (err) {
    // Nothing to restore at that time (before the first backup, or deleted there): the request's fault.
    if (err instanceof BackupNotFoundError || err instanceof BackupTombstonedError) throw new ForkError(400, err.message, { cause: err });
    throw new ForkError(500, `the point-in-time restore of \`${from}\` failed: ${errorMessage(err)}`, { cause: err });
  }
}

/**
 * Copies the open source database to `out` through SQLite's online backup API (better-sqlite3's
 * `backup()`), never by reading its files. Chosen over `VACUUM INTO`, which is one synchronous call
 * that holds the event loop for the whole copy: the backup copies a few MiB per event-loop turn, so
 * the server keeps serving while a big database is copied. Its source is a connection of our own
 * (never the maintenance connection, which checkpoints) holding one read transaction throughout: the
 * copy is the single consistent state of the moment the fork began, writers go on meanwhile (a WAL
 * reader does not block them), and their commits do not restart the copy (which they would if
 * every step took a read transaction of its own). The copy keeps the source's page size (4096, the
 * only one the engine opens); the new namespace opens it in WAL mode.
 */
async function copyDatabase(source: NamespaceDb, out: string): Promise<void> {
  // While the copy reads, the source must not be unloaded (`--max-active-namespaces`).
  const release = source.hold();
  let conn: Database.Database | null = null;
  try {
    conn = source.openInternalConnection();
    conn.exec('BEGIN');
    // A deferred BEGIN takes its read snapshot at the first read.
    conn.prepare('SELECT 1 FROM sqlite_master LIMIT 1').all();
    await conn.backup(out, { progress: () => COPY_PAGES_PER_STEP });
  } catch (err) {
    throw new ForkError(500, `copying the database of \`${source.name}\` failed: ${errorMessage(err)}`, { cause: err });
  } finally {
    if (conn?.inTransaction) conn.exec('ROLLBACK');
    conn?.close();
    release();
  }
}
