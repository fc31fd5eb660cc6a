/**
 * `<ns>/bottomless/staging/<generation>/<object name>`: objects written durably to local disk before
 * they are uploaded (temp file, fsync, rename, fsync of the directory), deleted once in the store.
 * Temp files are named `tmp-…` (no object name starts so) and removed at start-up. A batch's user
 * metadata waits beside it in `<name>.headers`, so an upload after a restart carries it too.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { NamespacePaths } from '../../engine/data-dir.js';
import { fsyncDirOf } from '../../engine/wal/fs-util.js';
import { isGenerationId } from '../format/generation-id.js';

const TEMP_PREFIX = 'tmp-';
/** A batch's user metadata (commit times) beside it: `<object name>.headers`, JSON. */
export const HEADERS_SUFFIX = '.headers';

export function headersName(name: string): string {
  return `${name}${HEADERS_SUFFIX}`;
}

export class StagingDir {
  constructor(private readonly paths: NamespacePaths) {}

  file(gen: string, name: string): string {
    return this.paths.bottomlessStagingFile(gen, name);
  }

  /** A fresh temp path in the generation's folder (created). */
  tempFile(gen: string): string {
    const dir = this.paths.bottomlessStagingDir(gen);
    fs.mkdirSync(dir, { recursive: true });
    return path.join(dir, `${TEMP_PREFIX}${randomBytes(6).toString('hex')}`);
  }

  /** Writes `data` as `name` durably, synchronously (under the write lock: checkpoint hand-over). */
  writeSync(gen: string, name: string, data: Uint8Array): void {
    const tmp = this.tempFile(gen);
    const fd = fs.openSync(tmp, 'w', 0o644);
    try {
      let done = 0;
      while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done);
      fs.fsyncSync(fd);
    } catch (err) {
      fs.closeSync(fd);
      fs.rmSync(tmp, { force: true });
      throw err;
    }
    fs.closeSync(fd);
    this.place(tmp, gen, name);
  }

  /** Writes `data` to a temp file and fsyncs it, off the event loop; `place` then names it. */
  async writeTemp(gen: string, data: Uint8Array): Promise<string> {
    let tmp = this.tempFile(gen);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(tmp, 'w', 0o644);
    } catch (err) {
      // `remove` may have taken the (then empty) folder away while the open was on its way.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      tmp = this.tempFile(gen);
      fh = await fsp.open(tmp, 'w', 0o644);
    }
    try {
      await fh.writeFile(data);
      await fh.sync();
    } catch (err) {
      await fh.close().catch(() => undefined);
      await fsp.rm(tmp, { force: true });
      throw err;
    }
    await fh.close();
    return tmp;
  }

  /** Renames a synced temp file to its object name and syncs the directory. */
  place(tmp: string, gen: string, name: string): void {
    const target = this.file(gen, name);
    fs.renameSync(tmp, target);
    fsyncDirOf(target);
  }

  discard(tmp: string): void {
    fs.rmSync(tmp, { force: true });
  }

  /** Removes an object (and its headers file); the folder goes when it is empty. */
  async remove(gen: string, name: string): Promise<void> {
    await fsp.rm(this.file(gen, headersName(name)), { force: true });
    await fsp.rm(this.file(gen, name), { force: true });
    await fsp.rmdir(this.paths.bottomlessStagingDir(gen)).catch(() => undefined);
  }

  removeSync(gen: string, name: string): void {
    fs.rmSync(this.file(gen, headersName(name)), { force: true });
    fs.rmSync(this.file(gen, name), { force: true });
  }

  /** A staged object's bytes (ENOENT when it is gone). Our own file: SQLite never opens it. */
  read(gen: string, name: string): Promise<Buffer> {
    return fsp.readFile(this.file(gen, name));
  }

  /** A batch's staged metadata, null when it has none (or it is unreadable). */
  async readHeaders(gen: string, name: string): Promise<Record<string, string> | null> {
    try {
      const v = JSON.parse(await fsp.readFile(this.file(gen, headersName(name)), 'utf8')) as unknown;
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
      const out: Record<string, string> = {};
      for (const [k, val] of Object.entries(v)) if (typeof val === 'string') out[k] = val;
      return out;
    } catch {
      return null;
    }
  }

  size(gen: string, name: string): number | null {
    try {
      return fs.statSync(this.file(gen, name)).size;
    } catch {
      return null;
    }
  }

  /**
   * What is staged, by generation (start-up): temp files are removed, as are folders that are not
   * generation ids or are empty.
   */
  scan(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    let gens: string[];
    try {
      gens = fs.readdirSync(this.paths.bottomlessStaging);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return out;
      throw err;
    }
    for (const gen of gens) {
      const dir = this.paths.bottomlessStagingDir(gen);
      if (!isGenerationId(gen)) {
        fs.rmSync(dir, { recursive: true, force: true });
        continue;
      }
      const names: string[] = [];
      for (const name of fs.readdirSync(dir)) {
        if (name.startsWith(TEMP_PREFIX)) fs.rmSync(path.join(dir, name), { force: true });
        else names.push(name);
      }
      if (names.length === 0) fs.rmSync(dir, { recursive: true, force: true });
      else out.set(gen, names.sort());
    }
    return out;
  }

  /** Removes a generation's folder and everything in it. */
  removeGeneration(gen: string): void {
    fs.rmSync(this.paths.bottomlessStagingDir(gen), { recursive: true, force: true });
  }
}
