/** The page applier: whole transactions only, the file cut to size_after, big transactions spilled to disk. */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PageApplier } from '../../../src/backup/restore/apply.js';
import { makeTempDir } from './format-fixtures.js';

const PAGE = 512;
const page = (fill: number): Buffer => Buffer.alloc(PAGE, fill);
let tmp: { dir: string; remove: () => void } | null = null;
afterEach(() => tmp?.remove());

describe.each([
  { name: 'in memory', limit: 1 << 20 },
  { name: 'spilled', limit: 2 * PAGE },
])('PageApplier ($name)', ({ limit }) => {
  it('writes committed transactions (the newest image of each page), drops an unfinished one, and cuts the file', () => {
    tmp = makeTempDir('libsqlctl-apply-');
    const file = path.join(tmp.dir, 'db');
    const a = new PageApplier(file, PAGE, limit);
    expect(a.add({ pageNo: 1, sizeAfter: 0, page: page(1) })).toBe(false);
    expect(a.add({ pageNo: 3, sizeAfter: 0, page: page(3) })).toBe(false);
    expect(a.add({ pageNo: 2, sizeAfter: 0, page: page(2) })).toBe(false);
    expect(a.add({ pageNo: 1, sizeAfter: 4, page: page(9) })).toBe(true);
    a.add({ pageNo: 2, sizeAfter: 2, page: page(7) });
    a.add({ pageNo: 1, sizeAfter: 0, page: page(5) });
    expect(a.uncommittedFrames).toBe(1);
    a.close();
    const bytes = fs.readFileSync(file);
    expect(bytes.length).toBe(2 * PAGE);
    expect([bytes[0], bytes[PAGE]]).toEqual([9, 7]);
    expect(a).toMatchObject({ transactions: 2, framesApplied: 5, framesDiscarded: 1, sizeAfter: 2, firstTransactionWrotePage1: true });
    expect(fs.readdirSync(tmp.dir)).toEqual(['db']);
  });
});
