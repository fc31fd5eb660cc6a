import { createHash } from 'node:crypto';
import type { SqliteFiles } from '../files/sqlite-files.js';
import { PAGE_SIZE } from '../wal/frame.js';
import type { DbIdentity } from './capture-state.js';

/**
 * The database file's identity as it is now, read through the engine's descriptor. In WAL mode
 * only checkpoints write the file, so after a checkpoint it stays the same until the next one.
 */
export function dbIdentity(files: SqliteFiles): DbIdentity {
  const st = files.statDb();
  const page = Buffer.alloc(PAGE_SIZE);
  const got = files.readDb(page, 0);
  // Whole milliseconds: copies that keep the time (cp -p, rsync -t, utimes) keep it at that precision.
  return { size: st.size, mtimeMs: Math.trunc(st.mtimeMs), page1: createHash('sha1').update(page.subarray(0, got)).digest('hex') };
}
