import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DataDirLock } from '../../src/engine/data-dir-lock.js';
import { fsReason } from '../../src/engine/fs-errors.js';
import { ConfigError, LibsqlctlError } from '../../src/errors.js';
import { startTestServer, tempDir } from '../helpers/test-server.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function dir(): string {
  const d = tempDir();
  dirs.push(d);
  return d;
}

describe('data directory lock', () => {
  it('refuses a second server on the same data directory, and frees it at close', async () => {
    const dbPath = path.join(dir(), 'data.sqld');
    const first = await startTestServer({ 'db-path': dbPath });
    let code = 'none';
    try {
      await startTestServer({ 'db-path': dbPath });
    } catch (err) {
      code = err instanceof LibsqlctlError ? err.code : 'other';
    }
    expect(code).toBe('DATA_DIR_IN_USE');
    // the first server is unaffected
    expect((await fetch(`${first.url}/health`)).status).toBe(200);
    await first.close();
    const again = await startTestServer({ 'db-path': dbPath });
    await again.close();
  });

  it('names the owner when another live process holds it', () => {
    const d = dir();
    fs.writeFileSync(path.join(d, '.libsqlctl.lock'), `${process.ppid}\n`);
    expect(() => DataDirLock.acquire(d)).toThrow(`in use by process ${process.ppid}`);
  });

  it('takes over a lock left by a process that no longer runs', () => {
    const d = dir();
    // pids above the kernel's pid_max (at most 2^22) never run
    fs.writeFileSync(path.join(d, '.libsqlctl.lock'), '99999999\n');
    const lock = DataDirLock.acquire(d);
    expect(fs.readFileSync(path.join(d, '.libsqlctl.lock'), 'utf8').trim()).toBe(String(process.pid));
    lock.release();
    expect(fs.existsSync(path.join(d, '.libsqlctl.lock'))).toBe(false);
  });
});

function refusal(dbPath: string): ConfigError {
  try {
    DataDirLock.acquire(dbPath).release();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`DataDirLock.acquire(${dbPath}) succeeded`);
}

describe('a --db-path that cannot be a data directory: a ConfigError in words, nothing created', () => {
  it('a --db-path that is a regular file', () => {
    const file = path.join(dir(), 'not-a-dir');
    fs.writeFileSync(file, 'x');
    const err = refusal(file);
    expect(err.code).toBe('CONFIG_DB_PATH');
    expect(err.message).toBe(`--db-path ${file}: it is a file, not a directory`);
    expect(err.hint).toMatch(/give a directory/);
    expect(fs.readFileSync(file, 'utf8'), 'the file is left alone').toBe('x');
  });

  it('a --db-path below a regular file', () => {
    const file = path.join(dir(), 'file');
    fs.writeFileSync(file, 'x');
    const err = refusal(path.join(file, 'data.sqld'));
    expect(err.message).toMatch(/: a part of the path is a file, not a directory \(ENOTDIR\)$/);
  });

  it('names errno codes in words, and falls back to the message for others', () => {
    const eacces = Object.assign(new Error('EACCES: permission denied, mkdir'), { code: 'EACCES' });
    expect(fsReason(eacces)).toBe('permission denied (EACCES)');
    expect(fsReason(Object.assign(new Error('odd'), { code: 'EWHATEVER' }))).toBe('odd');
  });
});
