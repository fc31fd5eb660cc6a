/** Small synchronous file helpers shared by the log and snapshot files. */
import { closeSync, fsyncSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/** Writes all of `buf` at `position`. */
export function writeFully(fd: number, buf: Uint8Array, position: number): void {
  let done = 0;
  while (done < buf.length) {
    done += writeSync(fd, buf, done, buf.length - done, position + done);
  }
}

/** Reads up to `length` bytes at `position`, stopping early only at end of file. */
export function readFully(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number {
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, offset + done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/** Makes a file creation or rename durable by syncing its directory (best effort off Linux). */
export function fsyncDirOf(path: string): void {
  let fd: number;
  try {
    fd = openSync(dirname(path), 'r');
  } catch {
    return;
  }
  try {
    fsyncSync(fd);
  } catch {
    // Some platforms refuse fsync on directories; the data itself is already synced.
  } finally {
    closeSync(fd);
  }
}

/**
 * Replaces `path` atomically: `fill` writes a temporary file beside it, which is renamed over
 * `path`. `durable` adds an fsync of the file before the rename and of the directory after it (a
 * power loss then keeps either the old or the new file). A failed write leaves `path` untouched and
 * no temporary file behind.
 */
export function writeAtomically(path: string, fill: (fd: number) => void, opts: { durable: boolean }): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w', 0o644);
  try {
    fill(fd);
    if (opts.durable) fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
  if (opts.durable) fsyncDirOf(path);
}
