import fs from 'node:fs';
import { ConfigError, LibsqlctlError } from '../errors.js';
import { DataDirPaths } from './data-dir.js';
import { errnoOf, fsReason } from './fs-errors.js';

/** Lock files this process holds (a lock naming our own pid but not in here is a previous run's). */
const held = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * One server per data directory: two processes capturing frames from the same WAL would corrupt the
 * replication log. The lock is a file holding the owner's pid; a lock left by a process that no longer
 * runs (a crash) is taken over.
 */
export class DataDirLock {
  private constructor(private readonly file: string) {}

  static acquire(dbPath: string): DataDirLock {
    createDataDir(dbPath);
    const file = new DataDirPaths(dbPath).lockFile;
    if (held.has(file)) {
      throw new LibsqlctlError('DATA_DIR_IN_USE', `the data directory ${dbPath} is in use by this process`, { hint: 'Give each server its own --db-path.' });
    }
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        fs.writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
        held.add(file);
        return new DataDirLock(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const owner = Number.parseInt(fs.readFileSync(file, 'utf8'), 10);
      if (Number.isInteger(owner) && owner !== process.pid && alive(owner)) {
        throw new LibsqlctlError('DATA_DIR_IN_USE', `the data directory ${dbPath} is in use by process ${owner}`, {
          hint: `Stop that server, or give this one another --db-path. If no such server runs, delete ${file}.`,
        });
      }
      fs.rmSync(file, { force: true });
    }
    throw new LibsqlctlError('DATA_DIR_IN_USE', `cannot lock the data directory ${dbPath}`, { hint: `Delete ${file} if no server uses it.` });
  }

  release(): void {
    if (!held.delete(this.file)) return;
    fs.rmSync(this.file, { force: true });
  }
}

/** Creates the data directory (and its parents), or says in words why it cannot be one. */
function createDataDir(dbPath: string): void {
  try {
    fs.mkdirSync(dbPath, { recursive: true });
    return;
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'EEXIST' || code === 'ENOTDIR') {
      throw new ConfigError('CONFIG_DB_PATH', `--db-path ${dbPath}: ${code === 'EEXIST' ? 'it is a file, not a directory' : fsReason(err)}`, {
        cause: err,
        hint: 'give a directory (it is created when missing), e.g. --db-path data.sqld',
      });
    }
    throw new ConfigError('CONFIG_DB_PATH', `--db-path ${dbPath}: cannot create the data directory: ${fsReason(err)}`, {
      cause: err,
      hint: 'choose a --db-path you can write to, or fix the permissions of its parent directory',
    });
  }
}
