/** Redo slots: batches of any size round-trip; a slot rewritten with a smaller batch reads back only that batch. */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { inspectRedo, readRedoPages, RedoSlot } from '../../../src/engine/replica/redo-file.js';
import { PAGE_SIZE } from '../../../src/engine/wal/frame.js';
import { removeTempDirs, tempDir } from '../../helpers/page-transactions.js';
import { prng } from '../../helpers/prng.js';

const LOG_ID = '0192a3b4-c5d6-7e8f-9012-3456789abcde';

afterEach(() => removeTempDirs());

function pagesOf(count: number, seed: number): Map<number, Buffer> {
  const next = prng(seed);
  const pages = new Map<number, Buffer>();
  for (let pageNo = 1; pageNo <= count; pageNo++) {
    const page = Buffer.alloc(PAGE_SIZE);
    for (let i = 0; i < PAGE_SIZE; i += 4) page.writeUInt32LE(Math.floor(next() * 0x1_0000_0000), i);
    pages.set(pageNo, page);
  }
  return pages;
}

async function writeBatch(slot: RedoSlot, pages: Map<number, Buffer>, lastFrameNo: bigint): Promise<void> {
  const writer = slot.writer({ logId: LOG_ID, lastFrameNo, sizeAfter: pages.size });
  for (const [pageNo, page] of pages) writer.add(pageNo, page);
  const header = await writer.finish();
  expect(header.pageCount).toBe(pages.size);
}

function readBack(path: string): { lastFrameNo: bigint; pages: Map<number, Buffer> } {
  const redo = inspectRedo(path);
  if (redo.state !== 'valid') throw new Error(`redo file is ${redo.state}: ${redo.state === 'invalid' ? redo.reason : ''}`);
  const pages = new Map<number, Buffer>();
  readRedoPages(path, redo.header, (pageNo, page) => pages.set(pageNo, Buffer.from(page)));
  return { lastFrameNo: redo.header.lastFrameNo, pages };
}

describe('replica redo slots', () => {
  // 1 and 8 fit the first buffer; 9 and 100 make it grow; 600 spans several full 256-entry chunks
  it.each([1, 8, 9, 100, 600])('a batch of %i pages reads back page for page', async (count) => {
    const path = join(tempDir(), 'replica-redo');
    const slot = new RedoSlot(path);
    try {
      const pages = pagesOf(count, count);
      await writeBatch(slot, pages, BigInt(count) * 10n);
      const back = readBack(path);
      expect(back.lastFrameNo).toBe(BigInt(count) * 10n);
      expect([...back.pages.keys()]).toEqual([...pages.keys()]);
      for (const [pageNo, page] of pages) expect(back.pages.get(pageNo)?.equals(page), `page ${pageNo}`).toBe(true);
    } finally {
      slot.close();
    }
  });

  it('a slot rewritten in place with a smaller batch holds only the new batch', async () => {
    const path = join(tempDir(), 'replica-redo');
    const slot = new RedoSlot(path);
    try {
      await writeBatch(slot, pagesOf(300, 1), 300n);
      const small = pagesOf(3, 2);
      await writeBatch(slot, small, 303n);
      const back = readBack(path);
      expect(back.lastFrameNo).toBe(303n);
      expect(back.pages.size).toBe(3);
      for (const [pageNo, page] of small) expect(back.pages.get(pageNo)?.equals(page), `page ${pageNo}`).toBe(true);
    } finally {
      slot.close();
    }
  });
});
