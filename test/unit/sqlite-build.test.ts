/**
 * Facts about the SQLite inside better-sqlite3 that decisions rest on. If one of these changes with
 * an upgrade, revisit the decision named in the test.
 */
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';

describe('the SQLite build of better-sqlite3', () => {
  it('counts no memory (SQLITE_DEFAULT_MEMSTATUS=0), so a hard heap limit never triggers: --hard-heap-limit-mb is refused', () => {
    const db = new Database(':memory:');
    try {
      const options = (db.pragma('compile_options') as { compile_options: string }[]).map((o) => o.compile_options);
      expect(options).toContain('DEFAULT_MEMSTATUS=0');
      db.pragma('hard_heap_limit = 1000000');
      db.exec('CREATE TABLE t(x)');
      const insert = db.prepare('INSERT INTO t VALUES (randomblob(100000))');
      for (let i = 0; i < 50; i++) insert.run();
      // 10 MB in one value, ten times the limit: with memory accounting on this would be SQLITE_NOMEM
      const row = db.prepare("SELECT length(group_concat(hex(x), '')) AS n FROM t").get() as { n: number };
      expect(row.n).toBe(10_000_000);
    } finally {
      db.close();
    }
  });
});
