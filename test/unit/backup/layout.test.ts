import { describe, expect, it } from 'vitest';
import {
  batchKey,
  changeCounterKey,
  dbPrefix,
  depKey,
  durableMarkerKey,
  generationPrefix,
  metaKey,
  parseBatchName,
  parseCompression,
  parseGenerationKey,
  parseGenerationPrefix,
  snapshotKey,
  sqldDbName,
  tombstoneKey,
} from '../../../src/backup/format/layout.js';

const GEN = 'e4eb3c21-ff53-7b2e-a6ea-ca396f4df9b1';
const GEN2 = 'e4e46038-04e1-7a3c-9f00-0123456789ab';
const DB = 'ns-abc:default';

describe('bottomless keys', () => {
  it('names databases as sqld does', () => {
    expect(sqldDbName('5d64e223-21a3-4835-9815-9613216d9859', 'default')).toBe('ns-5d64e223-21a3-4835-9815-9613216d9859:default');
    expect(sqldDbName('', 'default')).toBe('ns-:default');
  });

  it('builds every key', () => {
    expect(dbPrefix(DB)).toBe('ns-abc:default-');
    expect(generationPrefix(DB, GEN)).toBe(`ns-abc:default-${GEN}/`);
    expect(metaKey(DB, GEN)).toBe(`ns-abc:default-${GEN}/.meta`);
    expect(depKey(DB, GEN)).toBe(`ns-abc:default-${GEN}/.dep`);
    expect(changeCounterKey(DB, GEN)).toBe(`ns-abc:default-${GEN}/.changecounter`);
    expect(durableMarkerKey(DB, GEN)).toBe(`ns-abc:default-${GEN}/.libsqlctl-durable`);
    expect(snapshotKey(DB, GEN, 'gz')).toBe(`ns-abc:default-${GEN}/db.gz`);
    expect(snapshotKey(DB, GEN, 'raw')).toBe(`ns-abc:default-${GEN}/db.raw`);
    expect(snapshotKey(DB, GEN, 'zstd')).toBe(`ns-abc:default-${GEN}/db.zstd`);
    expect(tombstoneKey(DB)).toBe('ns-abc:default.tombstone');
    expect(batchKey(DB, GEN, 1, 42, 1_671_783_892, 'zstd')).toBe(`${DB}-${GEN}/000000000001-000000000042-1671783892.zstd`);
  });

  it('parses the spec example key and rebuilds it', () => {
    const key = 'ns-abc:default-e4eb3c21-ff53-7b2e-a6ea-ca396f4df9b1/000000000001-000000000042-1671783892.zstd';
    const parsed = parseGenerationKey(DB, key);
    expect(parsed).toEqual({ generation: GEN, object: { kind: 'batch', first: 1, last: 42, unixSecs: 1_671_783_892, compression: 'zstd' } });
    expect(batchKey(DB, GEN, 1, 42, 1_671_783_892, 'zstd')).toBe(key);
  });

  it('reads compression extensions as bottomless does', () => {
    expect(parseCompression('raw')).toBe('raw');
    expect(parseCompression('')).toBe('raw');
    expect(parseCompression('gz')).toBe('gz');
    expect(parseCompression('gzip')).toBe('gz');
    expect(parseCompression('zstd')).toBe('zstd');
    for (const bad of ['xz', 'GZ', 'zst', 'db', 'none']) expect(parseCompression(bad)).toBeNull();
  });

  it('parses batch names step by step', () => {
    expect(parseBatchName('000000000010-000000000020-5.gzip')).toEqual({ kind: 'batch', first: 10, last: 20, unixSecs: 5, compression: 'gz' });
    expect(parseBatchName('000000000001-000000000001-1700000000.')).toMatchObject({ compression: 'raw', first: 1, last: 1 });
    expect(parseBatchName('7-9-3.raw')).toMatchObject({ first: 7, last: 9, unixSecs: 3 }); // padding is not required to read
    expect(parseBatchName('1000000000000-1000000000001-3.gz')).toMatchObject({ first: 1e12, last: 1e12 + 1 });
    for (const bad of ['1-2-3.xz', '1-2.gz', '-1-2.gz', 'a-2-3.gz', '1-b-3.gz', '1-2-c.gz', '1-2-3', '5-4-3.gz', '0-1-3.gz', '+1-2-3.gz', '.gz', 'x.zstd', 'db.gz', '1-2-3.gz.tmp']) {
      expect(parseBatchName(bad)).toBeNull();
    }
  });

  it('classifies every object of a generation', () => {
    const kind = (name: string): unknown => parseGenerationKey(DB, `${DB}-${GEN}/${name}`)?.object;
    expect(kind('.meta')).toEqual({ kind: 'meta' });
    expect(kind('.dep')).toEqual({ kind: 'dep' });
    expect(kind('.changecounter')).toEqual({ kind: 'changecounter' });
    expect(kind('.libsqlctl-durable')).toEqual({ kind: 'durable' });
    expect(kind('db.zstd')).toEqual({ kind: 'snapshot', compression: 'zstd' });
    expect(kind('db.gz')).toEqual({ kind: 'snapshot', compression: 'gz' });
    expect(kind('db.raw')).toEqual({ kind: 'snapshot', compression: 'raw' });
    expect(kind('db.db')).toEqual({ kind: 'other', name: 'db.db' });
    expect(kind('.consistent')).toEqual({ kind: 'other', name: '.consistent' });
    expect(kind('sub/000000000001-000000000002-3.gz')).toEqual({ kind: 'other', name: 'sub/000000000001-000000000002-3.gz' });
    expect(kind('')).toEqual({ kind: 'other', name: '' });
  });

  it('ignores keys of other databases, even when our name is a prefix of theirs', () => {
    const other = 'ns-abc:default-b';
    expect(parseGenerationPrefix(DB, `${DB}-${GEN}/`)).toBe(GEN);
    expect(parseGenerationPrefix(DB, `${other}-${GEN}/`)).toBeNull();
    expect(parseGenerationKey(DB, `${other}-${GEN}/.meta`)).toBeNull();
    expect(parseGenerationPrefix(other, `${other}-${GEN}/`)).toBe(GEN);
    expect(parseGenerationPrefix(DB, `${DB}-${GEN}`)).toBeNull();
    expect(parseGenerationPrefix(DB, `${DB}-${GEN}/x/`)).toBeNull();
    expect(parseGenerationPrefix(DB, `${DB}-${GEN.toUpperCase()}/`)).toBeNull();
    expect(parseGenerationPrefix(DB, `${DB}-e4eb3c21-ff53-4b2e-a6ea-ca396f4df9b1/`)).toBeNull();
    expect(parseGenerationKey(DB, tombstoneKey(DB))).toBeNull();
    expect(parseGenerationKey(DB, `${DB}-${GEN}`)).toBeNull();
    // Regular-expression characters in the name are taken literally.
    expect(parseGenerationPrefix('ns-a.c:d', `ns-abc:d-${GEN}/`)).toBeNull();
    expect(parseGenerationPrefix('ns-a.c:d', `ns-a.c:d-${GEN}/`)).toBe(GEN);
  });

  it('lists in the order the spec describes', () => {
    const keys = [
      snapshotKey(DB, GEN, 'gz'),
      batchKey(DB, GEN, 100, 250, 1_700_000_100, 'gz'),
      batchKey(DB, GEN, 1, 99, 1_700_000_000, 'gz'),
      metaKey(DB, GEN),
      depKey(DB, GEN),
      changeCounterKey(DB, GEN),
      durableMarkerKey(DB, GEN),
      metaKey(DB, GEN2),
    ];
    const listed = [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    // GEN2 (2023) is newer than GEN (2022): its objects come first.
    expect(listed[0]).toBe(metaKey(DB, GEN2));
    expect(listed.slice(1).map((k) => parseGenerationKey(DB, k)?.object.kind)).toEqual(['changecounter', 'dep', 'durable', 'meta', 'batch', 'batch', 'snapshot']);
    expect(listed[5]).toContain('/000000000001-');
  });

  it('refuses to build malformed keys', () => {
    expect(() => batchKey(DB, GEN, 0, 1, 1, 'gz')).toThrow(RangeError);
    expect(() => batchKey(DB, GEN, 5, 4, 1, 'gz')).toThrow(RangeError);
    expect(() => batchKey(DB, GEN, 1, 1e12, 1, 'gz')).toThrow(RangeError);
    expect(() => batchKey(DB, GEN, 1, 2, -1, 'gz')).toThrow(RangeError);
    expect(() => metaKey(DB, 'nope')).toThrow(RangeError);
  });
});
