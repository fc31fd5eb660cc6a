import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compress, compressStream, decompress, decompressStream } from '../../../src/backup/format/codec.js';
import { CorruptBackupError } from '../../../src/backup/format/errors.js';
import type { Compression } from '../../../src/backup/format/layout.js';
import { xxh64, Xxh64 } from '../../../src/backup/format/xxh64.js';
import { prng } from '../../helpers/prng.js';
import { flipBit, makeTempDir, runTool, testData, throughStream } from './format-fixtures.js';

const KEY = 'ns-x:default-e4eb3c21-ff53-7b2e-a6ea-ca396f4df9b1/000000000001-000000000042-1671783892.gz';
const BIG = testData(3 * 1024 * 1024, 7);
const SMALL = testData(200 * 1024, 11);

let tmp: { dir: string; remove: () => void };
beforeAll(async () => {
  await runTool('gzip', ['--version']);
  await runTool('zstd', ['--version']);
  tmp = makeTempDir('libsqlctl-codec-');
});
afterAll(() => tmp.remove());

async function expectCorrupt(p: Promise<unknown>): Promise<CorruptBackupError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CorruptBackupError);
  const e = err as CorruptBackupError;
  expect(e.code).toBe('BACKUP_CORRUPT');
  expect(e.message).toContain(KEY);
  return e;
}

const CLI: Record<'gz' | 'zstd', { cmd: string; compress: string[]; decompress: string[] }> = {
  gz: { cmd: 'gzip', compress: ['-c'], decompress: ['-dc'] },
  zstd: { cmd: 'zstd', compress: ['-q', '-c'], decompress: ['-q', '-dc'] },
};

describe('xxh64', () => {
  it('matches the reference values', () => {
    expect(xxh64(Buffer.alloc(0))).toBe(0xef46db3751d8e999n);
    expect(xxh64(Buffer.from('a'))).toBe(0xd24ec4f1a98c6e5bn);
    expect(xxh64(Buffer.from('abc'))).toBe(0x44bc2cf5ad770999n);
  });

  it('gives the same digest however the input is split', () => {
    const data = SMALL.subarray(0, 10_007);
    const whole = xxh64(data);
    for (const step of [1, 3, 31, 32, 33, 4096]) {
      const h = new Xxh64();
      for (let i = 0; i < data.length; i += step) h.update(data.subarray(i, i + step));
      expect(h.digest()).toBe(whole);
    }
  });
});

describe('codec', () => {
  it.each(['raw', 'gz', 'zstd'] as const)('%s: buffers round-trip (empty input too)', async (c: Compression) => {
    for (const data of [BIG, Buffer.alloc(0), Buffer.from('x')]) {
      const packed = await compress(c, data);
      expect((await decompress(c, packed, KEY)).equals(data)).toBe(true);
    }
  });

  it.each(['raw', 'gz', 'zstd'] as const)('%s: streams round-trip in odd chunk sizes', async (c: Compression) => {
    const packed = await throughStream(compressStream(c), BIG);
    expect((await decompress(c, packed, KEY)).equals(BIG)).toBe(true);
    expect((await throughStream(decompressStream(c, KEY), packed)).equals(BIG)).toBe(true);
  });

  it.each(['gz', 'zstd'] as const)('%s: what we write, the CLI reads (buffer and stream)', async (c) => {
    const { cmd, decompress: args } = CLI[c];
    expect((await runTool(cmd, args, await compress(c, BIG))).equals(BIG)).toBe(true);
    expect((await runTool(cmd, args, await throughStream(compressStream(c), BIG))).equals(BIG)).toBe(true);
  });

  it.each(['gz', 'zstd'] as const)('%s: what the CLI writes, we read (buffer and stream)', async (c) => {
    const { cmd, compress: args } = CLI[c];
    const packed = await runTool(cmd, args, BIG);
    expect((await decompress(c, packed, KEY)).equals(BIG)).toBe(true);
    expect((await throughStream(decompressStream(c, KEY), packed, 5)).equals(BIG)).toBe(true);
  });

  it('zstd: reads frames with and without content size and checksum, and several frames in a row', async () => {
    const file = join(tmp.dir, 'data.bin');
    writeFileSync(file, SMALL);
    const withSize = await runTool('zstd', ['-q', '-c', file]); // size known: content size in the header
    const noCheck = await runTool('zstd', ['-q', '-c', '--no-check'], SMALL);
    const level19 = await runTool('zstd', ['-q', '-c', '-19'], SMALL.subarray(0, 50_000));
    for (const packed of [withSize, noCheck]) expect((await decompress('zstd', packed, KEY)).equals(SMALL)).toBe(true);
    expect((await decompress('zstd', level19, KEY)).equals(SMALL.subarray(0, 50_000))).toBe(true);
    const skippable = Buffer.concat([Buffer.from([0x5a, 0x2a, 0x4d, 0x18, 3, 0, 0, 0]), Buffer.from('abc')]);
    const multi = Buffer.concat([withSize, skippable, noCheck, await compress('zstd', BIG)]);
    const expected = Buffer.concat([SMALL, SMALL, BIG]);
    expect((await decompress('zstd', multi, KEY)).equals(expected)).toBe(true);
    expect((await throughStream(decompressStream('zstd', KEY), multi)).equals(expected)).toBe(true);
    expect((await runTool('zstd', ['-q', '-dc'], multi)).equals(expected)).toBe(true);
  });

  it('gz: reads several members in a row', async () => {
    const a = await runTool('gzip', ['-c'], SMALL);
    const b = await compress('gz', BIG);
    const expected = Buffer.concat([SMALL, BIG]);
    expect((await decompress('gz', Buffer.concat([a, b]), KEY)).equals(expected)).toBe(true);
    expect((await throughStream(decompressStream('gz', KEY), Buffer.concat([a, b]))).equals(expected)).toBe(true);
  });

  it.each(['gz', 'zstd'] as const)('%s: truncated input is CorruptBackupError (buffer and stream)', async (c) => {
    const packed = await compress(c, SMALL);
    for (const len of [0, 1, 5, 17, packed.length >> 1, packed.length - 5, packed.length - 4, packed.length - 1]) {
      const cut = packed.subarray(0, len);
      await expectCorrupt(decompress(c, cut, KEY));
      await expectCorrupt(throughStream(decompressStream(c, KEY), cut));
    }
  });

  it.each(['gz', 'zstd'] as const)('%s: flipped bits are CorruptBackupError (ours and the CLI\'s)', async (c) => {
    for (const packed of [await compress(c, SMALL), await runTool(CLI[c].cmd, CLI[c].compress, SMALL)]) {
      for (let k = 1; k < 20; k++) {
        const damaged = flipBit(packed, Math.floor((packed.length * k) / 20), k % 8);
        await expectCorrupt(decompress(c, damaged, KEY));
        await expectCorrupt(throughStream(decompressStream(c, KEY), damaged));
      }
      // The checksum trailer itself.
      await expectCorrupt(decompress(c, flipBit(packed, packed.length - 2), KEY));
    }
  });

  it.each(['gz', 'zstd'] as const)('%s: garbage and trailing garbage are CorruptBackupError, never a hang', async (c) => {
    const rnd = prng(99);
    for (let i = 0; i < 20; i++) {
      const junk = Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 2000) }, () => Math.floor(rnd() * 256)));
      await expectCorrupt(decompress(c, junk, KEY));
      await expectCorrupt(throughStream(decompressStream(c, KEY), junk));
    }
    const packed = await compress(c, SMALL);
    const err = await expectCorrupt(decompress(c, Buffer.concat([packed, Buffer.from('trailing junk')]), KEY));
    expect(err.message).toContain(c === 'gz' ? 'gzip' : 'zstd');
  });
});
