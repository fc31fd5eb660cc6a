/** A --db-path that cannot be a data directory: a ConfigError in words, nothing created. */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DataDirLock } from '../../src/engine/data-dir-lock.js';
import { fsReason } from '../../src/engine/fs-errors.js';
import { ConfigError } from '../../src/errors.js';
import { tempDir } from '../helpers/test-server.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function scratch(): string {
  const d = tempDir();
  dirs.push(d);
  return d;
}

function refusal(dbPath: string): ConfigError {
  try {
    DataDirLock.acquire(dbPath).release();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`DataDirLock.acquire(${dbPath}) succeeded`);
}

describe('data directory errors', () => {
  it('a --db-path that is a regular file', () => {
    const file = path.join(scratch(), 'not-a-dir');
    fs.writeFileSync(file, 'x');
    const err = refusal(file);
    expect(err.code).toBe('CONFIG_DB_PATH');
    expect(err.message).toBe(`--db-path ${file}: it is a file, not a directory`);
    expect(err.hint).toMatch(/give a directory/);
    expect(fs.readFileSync(file, 'utf8'), 'the file is left alone').toBe('x');
  });

  it('a --db-path below a regular file', () => {
    const file = path.join(scratch(), 'file');
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
