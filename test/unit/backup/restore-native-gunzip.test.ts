import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type { DigestKind } from '../../../src/backup/format/digest.js';
import { CorruptBackupError } from '../../../src/backup/format/errors.js';
import { GunzipError, NativeGunzip, nativeRestore } from '../../../src/backup/restore/native-gunzip.js';
import { downloadSnapshot } from '../../../src/backup/restore/snapshot.js';
import { crc64GoIso } from '../../../src/engine/wal/crc64.js';
import type { BackupStorage } from '../../../src/backup/storage/storage.js';

/** native/restore.c, built by `npm install`: loaded, and decoding exactly what node:zlib decodes. */

/** The digest computed in one piece, independently of the decoder (the CRC by crc64.ts's single call). */
function digestOf(kind: DigestKind, data: Buffer): string {
  return kind === 'sha256' ? createHash('sha256').update(data).digest('hex') : crc64GoIso(data).toString(16).padStart(16, '0');
}

const HISTORY_FREE_OUT = 1000;

/**
 * Decodes `gz` fed in pieces of the given sizes into `outSize`-byte buffers; null when the decoder
 * refuses it. With a digest, the decoder also computes it, and it must be that of what it decoded.
 */
async function nativeDecode(gz: Buffer, pieces: number[], outSize: number, digest: DigestKind | null = null): Promise<Buffer | null> {
  const decoder = new NativeGunzip(nativeRestore!, digest);
  const inputs: Buffer[] = [];
  let at = 0;
  for (const p of pieces) {
    if (at >= gz.length) break;
    inputs.push(gz.subarray(at, at + p));
    at += p;
  }
  if (at < gz.length) inputs.push(gz.subarray(at));
  const parts: Buffer[] = [];
  try {
    for (let i = 0; ; i++) {
      const final = i >= inputs.length;
      let feed: Buffer | null = final ? null : inputs[i]!;
      for (;;) {
        const out = Buffer.alloc(outSize);
        const { status, produced } = await decoder.run(feed, out, final);
        feed = null;
        parts.push(Buffer.from(out.subarray(0, produced)));
        if (status === 1) continue;
        if (status === 2) {
          const all = Buffer.concat(parts);
          if (digest !== null) expect(decoder.hex()).toBe(digestOf(digest, all));
          return all;
        }
        break;
      }
      if (final) throw new Error('status 0 on the final call');
    }
  } catch (err) {
    if (err instanceof GunzipError) return null;
    throw err;
  }
}

function zlibDecode(gz: Buffer): Buffer | null {
  try {
    return zlib.gunzipSync(gz);
  } catch {
    return null;
  }
}

const content = fc.oneof(
  fc.uint8Array({ maxLength: 5000 }).map((a) => Buffer.from(a)),
  fc.tuple(fc.string({ maxLength: 40 }), fc.nat({ max: 3000 })).map(([s, n]) => Buffer.from(s.repeat(n % 200))),
  fc.nat({ max: 100_000 }).map((n) => Buffer.alloc(n, 7)),
);

describe('the native snapshot decoder', () => {
  it('is built and loaded, and found the OpenSSL of the process to hash with', () => {
    expect(nativeRestore).not.toBeNull();
    expect(nativeRestore!.canHash).toBe(true);
  });

  it('gives a digest once, and only for a decoder made with one (SHA-256 or CRC-64)', async () => {
    const text = Buffer.from('x'.repeat(10_000));
    const gz = zlib.gzipSync(text);
    const plain = new NativeGunzip(nativeRestore!, null);
    await plain.run(gz, Buffer.alloc(20_000), true);
    expect(() => plain.hex()).toThrow(/not created to hash/);
    for (const kind of ['sha256', 'crc64'] as const) {
      const hashing = new NativeGunzip(nativeRestore!, kind);
      await hashing.run(gz, Buffer.alloc(20_000), true);
      expect(hashing.hex()).toBe(digestOf(kind, text));
      expect(() => hashing.hex()).toThrow(/digest was taken/);
    }
    expect(digestOf('crc64', Buffer.from('123456789'))).toBe('b90956c775a41001');
    expect(() => nativeRestore!.createGunzip('md5' as 'crc64')).toThrow(TypeError);
  });

  it('decodes what node:zlib decodes, in any pieces and output sizes (several members, zero padding)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(content, { minLength: 1, maxLength: 3 }),
        fc.integer({ min: 0, max: 9 }),
        fc.nat({ max: 3 }),
        fc.array(fc.integer({ min: 1, max: 3000 }), { maxLength: 30 }),
        fc.integer({ min: 512, max: 70_000 }),
        fc.constantFrom(null, 'sha256' as const, 'crc64' as const),
        async (members, level, padding, pieces, outSize, digest) => {
          const gz = Buffer.concat([...members.map((m) => zlib.gzipSync(m, { level })), Buffer.alloc(padding)]);
          expect(await nativeDecode(gz, pieces, outSize, digest)).toEqual(zlibDecode(gz));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('refuses damaged and truncated data whenever node:zlib does, and never decodes it differently', async () => {
    await fc.assert(
      fc.asyncProperty(content, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 3 }), fc.option(fc.nat()), async (data, flips, cut) => {
        const gz = Buffer.from(zlib.gzipSync(data));
        for (const [at, bits] of flips) gz[at % gz.length]! ^= bits;
        const damaged = cut === null ? gz : gz.subarray(0, cut % gz.length);
        expect(await nativeDecode(damaged, [7, 100, 5000], HISTORY_FREE_OUT)).toEqual(zlibDecode(damaged));
      }),
      { numRuns: 300 },
    );
    await expect(nativeDecode(Buffer.alloc(0), [], 100)).resolves.toBeNull();
    await expect(nativeDecode(Buffer.from('not gzip at all'), [], 100)).resolves.toBeNull();
  });

  it('computes the gzip CRC-32 itself (zlib is told not to): equal to node:zlib\'s crc32, in pieces', () => {
    fc.assert(
      // At least a byte: node:zlib answers 0 for no data whatever the start value (zlib's crc32 given no buffer).
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 3000 }), fc.nat({ max: 3000 }), fc.nat({ max: 0xffff_ffff }), (bytes, split, start) => {
        const data = Buffer.from(bytes);
        const at = split % (data.length + 1);
        expect(nativeRestore!.crc32(data, start)).toBe(zlib.crc32(data, start));
        expect(nativeRestore!.crc32(data.subarray(at), nativeRestore!.crc32(data.subarray(0, at)))).toBe(zlib.crc32(data));
      }),
      { numRuns: 300 },
    );
    expect(nativeRestore!.crc32(Buffer.from('123456789'))).toBe(0xcbf4_3926);
  });

  it('checks each member\'s trailer (CRC-32, then size) wherever the input is cut, with zlib\'s words', async () => {
    const data = randomBytes(20_000);
    const member = zlib.gzipSync(data);
    for (const [offset, message] of [
      [8, 'incorrect data check'],
      [5, 'incorrect data check'],
      [4, 'incorrect length check'],
      [1, 'incorrect length check'],
    ] as const) {
      const damaged = Buffer.concat([member, member]);
      damaged[member.length - offset]! ^= 0x01; // the first member's trailer
      for (const cut of [member.length - 9, member.length - 6, member.length - 1, member.length, 3]) {
        const decoder = new NativeGunzip(nativeRestore!, null);
        const out = Buffer.alloc(50_000);
        const both = decoder.run(damaged.subarray(0, cut), out, false).then((first) => (first.status === 0 ? decoder.run(damaged.subarray(cut), out, true) : Promise.reject(new Error(`status ${first.status}`))));
        await expect(both, `byte -${offset}, input cut at ${cut}`).rejects.toThrow(message);
      }
    }
    // The same bytes undamaged: both members, their sizes and CRCs right.
    expect(await nativeDecode(Buffer.concat([member, member]), [member.length - 3, 5], 7000)).toEqual(Buffer.concat([data, data]));
  });
});

describe('downloadSnapshot with the native decoder', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'native-gunzip-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** A store whose one object streams `body` in pieces of about `piece` bytes. */
  function storeOf(body: Buffer, metadata: Record<string, string>, piece: number): BackupStorage {
    const getStream = () => {
      const pieces: Buffer[] = [];
      for (let at = 0; at < body.length; at += piece) pieces.push(body.subarray(at, at + piece));
      return Promise.resolve({ head: { key: 'db.gz', size: body.length, lastModified: new Date(0), metadata }, body: Readable.from(pieces) });
    };
    return { getStream } as unknown as BackupStorage;
  }

  /** A database image: a valid SQLite header of 4096-byte pages, then random pages. */
  function database(pages: number): Buffer {
    const file = randomBytes(pages * 4096);
    Buffer.from('SQLite format 3\0', 'latin1').copy(file, 0);
    file.writeUInt16BE(4096, 16);
    file.writeUInt32BE(0, 28); // no in-header page count: the size decides
    return file;
  }

  it('writes the decoded snapshot, checks its digest and page count', async () => {
    const db = database(700); // more than the decoder's input and output buffers
    const gz = zlib.gzipSync(db, { level: 1 });
    const file = path.join(dir, 'ok.db');
    for (const kind of ['crc64', 'sha256'] as const) {
      const hex = digestOf(kind, db);
      const got = await downloadSnapshot(storeOf(gz, { [`libsqlctl-${kind}`]: hex, 'libsqlctl-page-count': '700' }, 65_536), { key: 'db.gz', compression: 'gz' }, file);
      expect(got).toMatchObject({ bytes: db.length, pageSize: 4096, pageCount: 700, digest: { kind, hex }, digestVerified: true });
      expect(fs.readFileSync(file).equals(db)).toBe(true);
      const wrong = `${hex.slice(0, -1)}${hex.endsWith('0') ? '1' : '0'}`;
      const err = await downloadSnapshot(storeOf(gz, { [`libsqlctl-${kind}`]: wrong, 'libsqlctl-page-count': '700' }, 65_536), { key: 'db.gz', compression: 'gz' }, file).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CorruptBackupError);
      expect((err as Error).message).toContain(`the ${kind} of its ${db.length} uncompressed bytes is ${hex}, its metadata says ${wrong}`);
    }
    const plain = await downloadSnapshot(storeOf(gz, {}, 65_536), { key: 'db.gz', compression: 'gz' }, file);
    expect(plain).toMatchObject({ digest: null, digestVerified: false });
  });

  it('damaged gzip data is a CorruptBackupError naming the object', async () => {
    const db = database(300);
    const gz = Buffer.from(zlib.gzipSync(db));
    gz[gz.length - 6]! ^= 0xff; // the CRC-32 of the trailer
    const file = path.join(dir, 'bad.db');
    const err = await downloadSnapshot(storeOf(gz, {}, 10_000), { key: 'db.gz', compression: 'gz' }, file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CorruptBackupError);
    expect((err as Error).message).toMatch(/db\.gz.*gzip data is damaged or truncated/);
    const cut = await downloadSnapshot(storeOf(gz.subarray(0, 5000), {}, 777), { key: 'db.gz', compression: 'gz' }, file).catch((e: unknown) => e);
    expect(cut).toBeInstanceOf(CorruptBackupError);
    expect((cut as Error).message).toMatch(/unexpected end of file/);
  });
});
