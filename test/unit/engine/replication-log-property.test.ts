/**
 * Property: whatever a client does to a primary (writes of every size, DDL, explicit transactions
 * committed or rolled back, VACUUM, readers holding snapshots, explicit and automatic checkpoints),
 * replaying its replication log — or its snapshots followed by the log suffix once compaction ran —
 * rebuilds exactly the primary's database, and frame numbers never restart.
 */
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { SqlConnection } from '../../../src/engine/connection.js';
import type { NamespaceDb } from '../../../src/engine/namespace-db.js';
import type { SqlValue } from '../../../src/engine/values.js';
import {
  bytes,
  EngineScope,
  framesOf,
  inspectFile,
  inspectPrimary,
  replayLog,
  replayWithSnapshots,
  run,
  pendingWal,
} from '../../helpers/engine-log.js';

const AUTO_CHECKPOINT_BYTES = 64 * 1024;
const TABLES = 3;

type Stmt =
  | { kind: 'insert'; table: number; rows: number; blobSize: number; seed: number }
  | { kind: 'update'; table: number; mod: number; blobSize: number; seed: number }
  | { kind: 'delete'; table: number; mod: number; rest: number }
  | { kind: 'createTable'; table: number }
  | { kind: 'dropTable'; table: number }
  | { kind: 'createIndex'; table: number }
  | { kind: 'addColumn'; table: number };

type Op =
  | Stmt
  | { kind: 'txn'; body: Stmt[]; commit: boolean; checkpointAfter: number }
  | { kind: 'checkpoint' }
  | { kind: 'vacuum' }
  | { kind: 'readerHold' }
  | { kind: 'readerRelease' }
  | { kind: 'awaitAutoCheckpoint' };

const table = fc.integer({ min: 0, max: TABLES - 1 });
const blobSize = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 3000, max: 20_000 }));
const seed = fc.integer({ min: 1, max: 0x7fff_ffff });

const stmtArb: fc.Arbitrary<Stmt> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('insert' as const), table, rows: fc.integer({ min: 1, max: 4 }), blobSize, seed }), weight: 6 },
  { arbitrary: fc.record({ kind: fc.constant('update' as const), table, mod: fc.integer({ min: 1, max: 4 }), blobSize, seed }), weight: 3 },
  { arbitrary: fc.record({ kind: fc.constant('delete' as const), table, mod: fc.integer({ min: 2, max: 5 }), rest: fc.integer({ min: 0, max: 1 }) }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('createTable' as const), table }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('dropTable' as const), table }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('createIndex' as const), table }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('addColumn' as const), table }), weight: 1 },
);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: stmtArb, weight: 10 },
  {
    arbitrary: fc.record({
      kind: fc.constant('txn' as const),
      body: fc.array(stmtArb, { minLength: 1, maxLength: 6 }),
      commit: fc.boolean(),
      checkpointAfter: fc.integer({ min: -1, max: 5 }),
    }),
    weight: 4,
  },
  { arbitrary: fc.constant({ kind: 'checkpoint' as const }), weight: 2 },
  { arbitrary: fc.constant({ kind: 'vacuum' as const }), weight: 1 },
  { arbitrary: fc.constant({ kind: 'readerHold' as const }), weight: 1 },
  { arbitrary: fc.constant({ kind: 'readerRelease' as const }), weight: 1 },
  { arbitrary: fc.constant({ kind: 'awaitAutoCheckpoint' as const }), weight: 2 },
);

const opsArb = fc.array(opArb, { minLength: 1, maxLength: 30, size: 'max' });

/** A sequence that certainly grows the WAL past the automatic checkpoint threshold, then waits for it. */
const BIG_EXAMPLE: Op[] = [
  { kind: 'createTable', table: 0 },
  { kind: 'createTable', table: 1 },
  { kind: 'insert', table: 0, rows: 4, blobSize: 20_000, seed: 7 },
  { kind: 'txn', body: [{ kind: 'insert', table: 0, rows: 4, blobSize: 19_000, seed: 8 }, { kind: 'addColumn', table: 0 }], commit: false, checkpointAfter: 0 },
  { kind: 'insert', table: 1, rows: 3, blobSize: 15_000, seed: 9 },
  { kind: 'awaitAutoCheckpoint' },
  { kind: 'update', table: 0, mod: 1, blobSize: 5000, seed: 10 },
  { kind: 'txn', body: [{ kind: 'createIndex', table: 1 }, { kind: 'addColumn', table: 1 }, { kind: 'delete', table: 1, mod: 2, rest: 1 }], commit: true, checkpointAfter: 1 },
  { kind: 'vacuum' },
  { kind: 'checkpoint' },
  { kind: 'delete', table: 0, mod: 2, rest: 0 },
];

/** Automatic checkpoints and snapshots seen across the runs of one property (they must happen). */
const stats = { autoCheckpoints: 0, compactions: 0 };

function tableName(n: number): string {
  return `t${n}`;
}

/** Drives one NamespaceDb through a sequence of operations. */
class Driver {
  private readonly writer: SqlConnection;
  private readonly reader: SqlConnection;
  private readerHeld = false;
  private columnSeq = 0;
  private guardWaiters: (() => void)[] = [];
  private explicit = false;
  private readonly logId: string;
  private lastNext: bigint;
  private readonly removeGuard: () => void;

  constructor(private readonly ns: NamespaceDb) {
    this.writer = ns.connect();
    this.reader = ns.connect();
    const frames = framesOf(ns);
    this.logId = frames.log.logId;
    this.lastNext = frames.log.nextFrameNo;
    this.removeGuard = frames.addCheckpointGuard(() => {
      // Consulted for every checkpoint attempt; outside explicitCheckpoint() it is the engine's own
      // (in the commit path once the WAL is big, or by its retry timer).
      if (!this.explicit) stats.autoCheckpoints += 1;
      for (const w of this.guardWaiters.splice(0)) w();
      return true;
    });
  }

  async apply(op: Op): Promise<void> {
    const frames = framesOf(this.ns);
    switch (op.kind) {
      case 'txn':
        await this.txn(op.body, op.commit, op.checkpointAfter);
        break;
      case 'checkpoint': {
        const ok = this.explicitCheckpoint();
        // Nothing holds the lock and no reader is in a transaction: SQLite cannot refuse it.
        if (!this.readerHeld) {
          expect(ok).toBe(true);
          expect(pendingWal(this.ns)).toBe(0);
        }
        break;
      }
      case 'vacuum':
        await run(this.writer, 'VACUUM');
        break;
      case 'readerHold':
        if (!this.readerHeld) {
          await run(this.reader, 'BEGIN');
          await run(this.reader, 'SELECT count(*) FROM sqlite_master');
          this.readerHeld = true;
        }
        break;
      case 'readerRelease':
        await this.releaseReader();
        break;
      case 'awaitAutoCheckpoint':
        await this.awaitAutoCheckpoint();
        break;
      default:
        await this.stmt(op);
    }
    // Frame numbers only grow, and the log keeps its identity.
    expect(frames.log.logId).toBe(this.logId);
    expect(frames.log.nextFrameNo).toBeGreaterThanOrEqual(this.lastNext);
    this.lastNext = frames.log.nextFrameNo;
  }

  /** Two of the three tables exist from the start, so that most statements have something to work on. */
  async setup(): Promise<void> {
    await this.stmt({ kind: 'createTable', table: 0 });
    await this.stmt({ kind: 'createTable', table: 1 });
    this.lastNext = framesOf(this.ns).log.nextFrameNo;
  }

  async finish(): Promise<void> {
    this.removeGuard();
    await this.releaseReader();
    expect(this.writer.isAutocommit).toBe(true);
    this.writer.close();
    this.reader.close();
  }

  private async releaseReader(): Promise<void> {
    if (this.readerHeld) {
      await run(this.reader, 'COMMIT');
      this.readerHeld = false;
    }
  }

  private explicitCheckpoint(): boolean {
    this.explicit = true;
    try {
      return framesOf(this.ns).checkpointNow();
    } finally {
      this.explicit = false;
    }
  }

  /** Waits (on the checkpoint guard being consulted, not on time) until the engine checkpointed by itself. */
  private async awaitAutoCheckpoint(): Promise<void> {
    await this.releaseReader();
    for (let attempt = 0; attempt < 20 && pendingWal(this.ns) >= AUTO_CHECKPOINT_BYTES; attempt++) {
      let timer: NodeJS.Timeout | undefined;
      const consulted = new Promise<void>((resolve) => this.guardWaiters.push(resolve));
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no automatic checkpoint within 5 s with ${pendingWal(this.ns)} WAL bytes`)), 5000);
      });
      try {
        await Promise.race([consulted, timeout]);
      } finally {
        clearTimeout(timer);
      }
    }
    expect(pendingWal(this.ns)).toBeLessThan(AUTO_CHECKPOINT_BYTES);
  }

  private async txn(body: Stmt[], commit: boolean, checkpointAfter: number): Promise<void> {
    await run(this.writer, 'BEGIN');
    for (const [i, s] of body.entries()) {
      await this.stmt(s);
      if (i === checkpointAfter) {
        const holds = this.ns.holdsWriteLock(this.writer);
        const ok = this.explicitCheckpoint();
        if (holds) expect(ok).toBe(false);
      }
    }
    await run(this.writer, commit ? 'COMMIT' : 'ROLLBACK');
  }

  private async tables(): Promise<Set<string>> {
    const res = await run(this.writer, "SELECT name FROM sqlite_master WHERE type = 'table'");
    return new Set(res.rows.map((r) => String(r[0])));
  }

  private async stmt(s: Stmt): Promise<void> {
    const name = tableName(s.table);
    const create = `CREATE TABLE IF NOT EXISTS ${name} (id INTEGER PRIMARY KEY, k INTEGER, v TEXT, b BLOB)`;
    if (s.kind === 'createTable') {
      await run(this.writer, create);
      return;
    }
    if (s.kind === 'dropTable') {
      await run(this.writer, `DROP TABLE IF EXISTS ${name}`);
      return;
    }
    if (!(await this.tables()).has(name)) {
      await run(this.writer, create);
      return;
    }
    switch (s.kind) {
      case 'insert': {
        const args: SqlValue[] = [];
        for (let i = 0; i < s.rows; i++) args.push(BigInt(s.seed + i), `v${s.seed + i}`, bytes(s.seed + i, s.blobSize));
        const values = Array.from({ length: s.rows }, () => '(?, ?, ?)').join(', ');
        await run(this.writer, `INSERT INTO ${name} (k, v, b) VALUES ${values}`, args);
        break;
      }
      case 'update':
        await run(this.writer, `UPDATE ${name} SET k = k + 1, v = v || 'u', b = ? WHERE id % ? = 0`, [bytes(s.seed, s.blobSize), BigInt(s.mod)]);
        break;
      case 'delete':
        await run(this.writer, `DELETE FROM ${name} WHERE id % ? = ?`, [BigInt(s.mod), BigInt(s.rest)]);
        break;
      case 'createIndex':
        await run(this.writer, `CREATE INDEX IF NOT EXISTS ${name}_kv ON ${name} (k, v)`);
        break;
      case 'addColumn':
        this.columnSeq += 1;
        await run(this.writer, `ALTER TABLE ${name} ADD COLUMN c${this.columnSeq} TEXT DEFAULT 'd${this.columnSeq}'`);
        break;
    }
  }
}

/** Opens a fresh namespace, applies `ops`, hands it to `check`, cleans up. */
async function withPrimary(ops: Op[], maxFrames: bigint | undefined, check: (ns: NamespaceDb, dir: string) => Promise<void> | void): Promise<void> {
  const scope = new EngineScope();
  try {
    const dir = scope.tempDir();
    const ns = await scope.open(join(dir, 'ns'), { checkpointWalBytes: AUTO_CHECKPOINT_BYTES, ...(maxFrames === undefined ? {} : { maxFrames }) });
    const driver = new Driver(ns);
    await driver.setup();
    for (const op of ops) await driver.apply(op);
    await driver.finish();
    await check(ns, dir);
  } finally {
    await scope.dispose();
  }
}

describe('replication log (property)', () => {
  it('replaying the log from frame 0 rebuilds the primary', async () => {
    stats.autoCheckpoints = 0;
    await fc.assert(
      fc.asyncProperty(opsArb, async (ops) => {
        await withPrimary(ops, undefined, (ns, dir) => {
          const frames = framesOf(ns);
          const log = frames.log;
          expect(log.startFrameNo).toBe(0n);
          const out = join(dir, 'replayed.db');
          const seen = replayLog(log, out);
          expect(seen.last).toBe(log.nextFrameNo - 1n);
          expect(frames.replicationIndex()).toBe(seen.last);
          const primary = inspectPrimary(ns);
          const replayed = inspectFile(out);
          expect(replayed.integrity).toBe('ok');
          expect(primary.integrity).toBe('ok');
          expect(replayed.pageCount).toBe(primary.pageCount);
          expect(replayed.dump).toBe(primary.dump);
        });
      }),
      { numRuns: 40, examples: [[BIG_EXAMPLE]], interruptAfterTimeLimit: 8000 },
    );
    // The sequences (the fixed example at least) really exercised automatic checkpoints.
    expect(stats.autoCheckpoints).toBeGreaterThan(0);
  });

  it('replaying the snapshots, then the log suffix, rebuilds the primary after repeated compaction', async () => {
    stats.compactions = 0;
    await fc.assert(
      fc.asyncProperty(opsArb, async (ops) => {
        await withPrimary(ops, 20n, async (ns, dir) => {
          const log = framesOf(ns).log;
          await log.drain();
          const out = join(dir, 'replayed.db');
          const { snapshots } = replayWithSnapshots(log, out);
          stats.compactions += snapshots;
          // A log that went past its 20-frame budget was compacted.
          if (log.nextFrameNo > 21n) expect(snapshots).toBeGreaterThan(0);
          const primary = inspectPrimary(ns);
          const replayed = inspectFile(out);
          expect(replayed.integrity).toBe('ok');
          expect(replayed.pageCount).toBe(primary.pageCount);
          expect(replayed.dump).toBe(primary.dump);
        });
      }),
      { numRuns: 30, examples: [[BIG_EXAMPLE]], interruptAfterTimeLimit: 8000 },
    );
    expect(stats.compactions).toBeGreaterThan(0);
  });

  it('replicationIndex() is the last frame number after every operation, compaction included', async () => {
    await fc.assert(
      fc.asyncProperty(opsArb, async (ops) => {
        const scope = new EngineScope();
        try {
          const ns = await scope.open(join(scope.tempDir(), 'ns'), { checkpointWalBytes: AUTO_CHECKPOINT_BYTES, maxFrames: 20n });
          const frames = framesOf(ns);
          const driver = new Driver(ns);
          await driver.setup();
          for (const op of ops) {
            await driver.apply(op);
            const next = frames.log.nextFrameNo;
            expect(frames.replicationIndex()).toBe(next === 0n ? null : next - 1n);
          }
          await driver.finish();
        } finally {
          await scope.dispose();
        }
      }),
      { numRuns: 15, examples: [[BIG_EXAMPLE]], interruptAfterTimeLimit: 8000 },
    );
  });
});
