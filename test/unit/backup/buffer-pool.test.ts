import { describe, expect, it } from 'vitest';
import { BufferPool } from '../../../src/backup/restore/buffer-pool.js';

describe('BufferPool', () => {
  it('hands back a buffer given back, the smallest that is large enough', () => {
    const pool = new BufferPool(4);
    const small = pool.take(100_000);
    const large = pool.take(3_000_000);
    expect(small.length).toBeGreaterThanOrEqual(100_000);
    expect(large.length).toBeGreaterThanOrEqual(3_000_000);
    pool.give(large);
    pool.give(small);
    expect(pool.take(50_000)).toBe(small);
    expect(pool.take(50_000)).toBe(large); // the only one left, and it fits
    expect(pool.size).toBe(0);
  });

  it('allocates when nothing given back is large enough, and keeps at most `keep`, the largest', () => {
    const pool = new BufferPool(2);
    const bufs = [pool.take(10), pool.take(200_000), pool.take(1_000_000)];
    expect(new Set(bufs).size).toBe(3);
    for (const b of bufs) pool.give(b);
    expect(pool.size).toBe(2);
    expect(pool.take(500_000)).toBe(bufs[2]);
    expect(pool.take(100)).toBe(bufs[1]);
    expect(pool.size).toBe(0);
    const fresh = pool.take(100);
    expect(bufs).not.toContain(fresh);
  });
});
