/**
 * The page applier writes each page once per write-out (the newest image) and cuts the file only
 * where the database shrank; the result must be byte for byte what replaying every transaction in
 * order gives (write its pages, then cut or grow the file to size_after). Checked against such a
 * replay kept here as the reference, on random transaction sequences (growing, shrinking, regrowing,
 * pages beyond the commit's own size, repeated pages, unfinished tails, every point-in-time cut),
 * under memory limits that force write-outs and spills, held and not; and on a real WAL with a
 * VACUUM that shrinks the database, against the reference and SQLite's own checkpoint.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type ApplyFrame, PageApplier } from '../../../src/backup/restore/apply.js';
import { WAL_FRAME_HEADER_SIZE } from '../../../src/engine/wal/sqlite-wal-format.js';
import { sqliteCli } from '../../helpers/sqlite-cli.js';
import { makeTempDir } from './format-fixtures.js';
import { captureWal, makeDb, PAGE_SIZE } from './restore-fixtures.js';
import { prng } from '../../helpers/prng.js';

let tmp: { dir: string; remove: () => void } | null = null;
afterEach(() => {
  tmp?.remove();
  tmp = null;
});

/** The replay this applier must equal: every committed transaction written in order, the file cut to its size. */
function referenceReplay(initial: Buffer, frames: readonly ApplyFrame[], pageSize: number, commits = Infinity): Buffer {
  let file = Buffer.from(initial);
  let pending: ApplyFrame[] = [];
  let done = 0;
  for (const f of frames) {
    if (done >= commits) break;
    pending.push(f);
    if (f.sizeAfter === 0) continue;
    for (const p of pending) {
      const end = p.pageNo * pageSize;
      if (file.length < end) file = Buffer.concat([file, Buffer.alloc(end - file.length)]);
      Buffer.from(p.page).copy(file, (p.pageNo - 1) * pageSize);
    }
    const size = f.sizeAfter * pageSize;
    file = file.length >= size ? file.subarray(0, size) : Buffer.concat([file, Buffer.alloc(size - file.length)]);
    pending = [];
    done++;
  }
  return Buffer.from(file);
}

const rng = prng;

/** Random transactions over a database of about `pages` pages that grows, shrinks and regrows. */
function randomFrames(seed: number, pageSize: number, pages: number, transactions: number): { initial: Buffer; frames: ApplyFrame[]; commits: number } {
  const r = rng(seed);
  const int = (n: number): number => Math.floor(r() * n);
  let size = 1 + int(pages);
  const initial = Buffer.alloc(size * pageSize);
  for (let i = 0; i < initial.length; i++) initial[i] = int(256);
  const frames: ApplyFrame[] = [];
  let stamp = 1;
  const page = (): Buffer => {
    const b = Buffer.alloc(pageSize, stamp & 0xff);
    b.writeUInt32BE(stamp++, 0);
    return b;
  };
  for (let t = 0; t < transactions; t++) {
    const roll = r();
    const next = roll < 0.15 ? Math.max(1, size - 1 - int(size)) : roll < 0.35 ? size + 1 + int(4) : size; // shrink, grow, same
    const n = int(5); // 0: a transaction of its commit frame alone
    for (let i = 0; i < n; i++) {
      // mostly pages that exist after the commit, sometimes one beyond it (cut away by the commit itself)
      const pageNo = r() < 0.1 ? next + 1 + int(3) : 1 + int(Math.max(next, 1));
      frames.push({ pageNo, sizeAfter: 0, page: page() });
      if (r() < 0.2) frames.push({ pageNo, sizeAfter: 0, page: page() }); // the same page twice in one transaction
    }
    // a grown database writes its new last page (SQLite does); sometimes not, and the gap reads as zeros
    // (rarely one beyond the new size: the commit cuts its own page away)
    const commitPage = r() < 0.05 ? next + 1 + int(2) : next > size && r() < 0.8 ? next : 1 + int(next);
    frames.push({ pageNo: commitPage, sizeAfter: next, page: page() });
    size = next;
  }
  for (let i = int(3); i > 0; i--) frames.push({ pageNo: 1 + int(size), sizeAfter: 0, page: page() }); // unfinished
  return { initial, frames, commits: transactions };
}

/** `f` as a WAL frame: its 24-byte header (page number, size after), then the page. */
function walFrame(f: ApplyFrame): Buffer {
  const b = Buffer.alloc(24 + f.page.length);
  b.writeUInt32BE(f.pageNo, 0);
  b.writeUInt32BE(f.sizeAfter, 4);
  b.set(f.page, 24);
  return b;
}

/**
 * Applies `frames` (up to `commits` transactions) with the applier, through add() or, as the
 * restore does, addFrame() on WAL frames; returns the file and the applier.
 */
function applyWith(file: string, initial: Buffer, frames: readonly ApplyFrame[], pageSize: number, limit: number, held: boolean, commits = Infinity, via: 'add' | 'addFrame' = 'add'): { bytes: Buffer; applier: PageApplier } {
  if (!held) fs.writeFileSync(file, initial);
  const a = new PageApplier(file, pageSize, limit, { held });
  let done = 0;
  let waiting = held;
  for (const f of frames) {
    if (done >= commits) break;
    if (waiting && a.full) {
      // as the restore does: memory is full, so wait for the snapshot to be in, then release
      fs.writeFileSync(file, initial);
      a.release();
      waiting = false;
    }
    if (via === 'add' ? a.add(f) : a.addFrame(walFrame(f), 0)) done++;
  }
  // never released in the loop: the file arrives only now (the snapshot download finished last)
  if (waiting) fs.writeFileSync(file, initial);
  a.discardPending(done < commits);
  a.close();
  return { bytes: fs.readFileSync(file), applier: a };
}

describe('PageApplier: newest image per page, written once, equals the in-order replay', () => {
  const PAGE = 512;
  const limits = [{ name: 'roomy', limit: 1 << 20 }, { name: 'a few pages (write-outs)', limit: 6 * PAGE }, { name: 'two pages (spills)', limit: 2 * PAGE }];

  it.each(limits)('random sequences, $name, held and not', ({ limit }) => {
    tmp = makeTempDir('libsqlctl-apply-dedup-');
    let saved = 0;
    for (let seed = 1; seed <= 40; seed++) {
      const { initial, frames, commits } = randomFrames(seed * 7919 + limit, PAGE, 24, 60);
      const expected = referenceReplay(initial, frames, PAGE);
      for (const held of [false, true]) {
        for (const via of ['add', 'addFrame'] as const) {
          const file = path.join(tmp.dir, `db-${seed}-${held}-${via}`);
          const { bytes, applier } = applyWith(file, initial, frames, PAGE, limit, held, Infinity, via);
          expect(bytes.equals(expected), `seed ${seed}, held ${held}, ${via}`).toBe(true);
          expect(applier.transactions).toBe(commits);
          expect(applier.framesApplied + applier.framesDiscarded).toBe(frames.length);
          expect(fs.readdirSync(tmp.dir).filter((f) => f.endsWith('.spill'))).toEqual([]);
          saved += applier.framesApplied - applier.pagesWritten;
        }
      }
    }
    if (limit === 1 << 20) expect(saved).toBeGreaterThan(0); // with room, repeated pages are written once
  });

  it('every point-in-time cut of a random sequence equals the replay up to that commit', () => {
    tmp = makeTempDir('libsqlctl-apply-dedup-');
    const { initial, frames, commits } = randomFrames(424242, PAGE, 16, 30);
    for (let cut = 0; cut <= commits; cut++) {
      for (const limit of [1 << 20, 3 * PAGE]) {
        for (const via of ['add', 'addFrame'] as const) {
          const file = path.join(tmp.dir, `db-${cut}-${limit}-${via}`);
          const { bytes, applier } = applyWith(file, initial, frames, PAGE, limit, false, cut, via);
          expect(bytes.equals(referenceReplay(initial, frames, PAGE, cut)), `cut after ${cut} commits, limit ${limit}, ${via}`).toBe(true);
          expect(applier.transactions).toBe(cut);
        }
      }
    }
  });

  it('a shrink that a later transaction regrows without writing the pages in between reads as zeros there', () => {
    tmp = makeTempDir('libsqlctl-apply-dedup-');
    const file = path.join(tmp.dir, 'db');
    const initial = Buffer.alloc(6 * PAGE, 0xee);
    const frames: ApplyFrame[] = [
      { pageNo: 1, sizeAfter: 2, page: Buffer.alloc(PAGE, 1) }, // cut to 2 pages
      { pageNo: 6, sizeAfter: 6, page: Buffer.alloc(PAGE, 6) }, // back to 6: pages 3..5 are zeros now
    ];
    for (const via of ['add', 'addFrame'] as const) {
      const { bytes } = applyWith(file, initial, frames, PAGE, 1 << 20, false, Infinity, via);
      expect(bytes.equals(referenceReplay(initial, frames, PAGE)), via).toBe(true);
      expect([bytes[0], bytes[PAGE], bytes[2 * PAGE], bytes[4 * PAGE], bytes[5 * PAGE]]).toEqual([1, 0xee, 0, 0, 6]);
    }
  });

  it('a one-frame transaction whose page lies beyond its own new size writes nothing there', () => {
    tmp = makeTempDir('libsqlctl-apply-dedup-');
    const file = path.join(tmp.dir, 'db');
    const initial = Buffer.alloc(3 * PAGE, 0xee);
    const frames: ApplyFrame[] = [
      { pageNo: 5, sizeAfter: 3, page: Buffer.alloc(PAGE, 5) }, // cut away by its own commit
      { pageNo: 6, sizeAfter: 6, page: Buffer.alloc(PAGE, 6) }, // grows over page 5 without writing it
    ];
    for (const via of ['add', 'addFrame'] as const) {
      const { bytes } = applyWith(file, initial, frames, PAGE, 1 << 20, false, Infinity, via);
      expect(bytes.equals(referenceReplay(initial, frames, PAGE)), via).toBe(true);
      expect([bytes[2 * PAGE], bytes[3 * PAGE], bytes[4 * PAGE], bytes[5 * PAGE]], via).toEqual([0xee, 0, 0, 6]);
    }
  });
});

/** One transaction inserting `n` rows with `bytes`-byte random blobs. */
const rows = (n: number, bytes: number): string => `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${n}) INSERT INTO t(v) SELECT randomblob(${bytes}) FROM c;`;

describe('PageApplier on a real WAL with a VACUUM (the database shrinks, then grows again)', () => {
  it('equals the in-order replay at every commit and SQLite’s own checkpoint at the end', async () => {
    tmp = makeTempDir('libsqlctl-apply-vacuum-');
    const src = path.join(tmp.dir, 'src.db');
    await makeDb(src, `CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB); ${rows(200, 3000)}`);
    const initial = fs.readFileSync(src);
    const wal = await captureWal(
      src,
      [
        rows(50, 2000),
        'DELETE FROM t WHERE k % 4 <> 0;',
        'VACUUM;',
        'UPDATE t SET v = randomblob(100) WHERE k % 8 = 0;',
        rows(30, 5000),
      ].join('\n'),
    );
    const checkpointed = fs.readFileSync(src); // captureWal checkpoints the WAL into src afterwards
    const frameSize = WAL_FRAME_HEADER_SIZE + PAGE_SIZE;
    const frames: ApplyFrame[] = Array.from({ length: wal.count }, (_, i) => ({
      pageNo: wal.frames.readUInt32BE(i * frameSize),
      sizeAfter: wal.frames.readUInt32BE(i * frameSize + 4),
      page: wal.frames.subarray(i * frameSize + WAL_FRAME_HEADER_SIZE, (i + 1) * frameSize),
    }));
    const sizes = frames.filter((f) => f.sizeAfter !== 0).map((f) => f.sizeAfter);
    expect(Math.min(...sizes.slice(2))).toBeLessThan(Math.max(...sizes.slice(0, 2))); // the VACUUM shrank it
    expect(sizes.at(-1)).toBeGreaterThan(Math.min(...sizes)); // and it grew again
    const full = referenceReplay(initial, frames, PAGE_SIZE);
    expect(full.equals(checkpointed)).toBe(true);
    for (let cut = 0; cut <= wal.commits.length; cut++) {
      for (const limit of [256 << 20, 8 * PAGE_SIZE]) {
        const file = path.join(tmp.dir, `out-${cut}-${limit}.db`);
        const { bytes } = applyWith(file, initial, frames, PAGE_SIZE, limit, false, cut);
        expect(bytes.equals(cut === wal.commits.length ? checkpointed : referenceReplay(initial, frames, PAGE_SIZE, cut)), `cut ${cut}, limit ${limit}`).toBe(true);
      }
    }
    const out = path.join(tmp.dir, `out-${wal.commits.length}-${8 * PAGE_SIZE}.db`);
    expect((await sqliteCli(out, ['PRAGMA integrity_check;'])).trim()).toBe('ok');
  });
});
