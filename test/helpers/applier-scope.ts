/**
 * A replica directory with the engine's descriptors and a FrameApplier on them, for the applier's
 * unit tests; everything made here is closed by the scope's cleanups (call `dispose()` after each test).
 */
import { expect } from 'vitest';
import { NamespacePaths } from '../../src/engine/data-dir.js';
import { SqliteFiles } from '../../src/engine/files/sqlite-files.js';
import { silentLogger } from '../../src/engine/logger.js';
import type { LoggedTransaction } from '../../src/engine/pipeline/transactions.js';
import { readClientWalIndex } from '../../src/engine/replica/client-wal-index.js';
import { FrameApplier, type FrameApplierOptions } from '../../src/engine/replica/frame-applier.js';
import { inspectDb, PagePrimary, removeTempDirs, standardWorkload, tempDir, unappliedRedo } from './page-transactions.js';

export class ApplierScope {
  readonly cleanups: (() => void | Promise<void>)[] = [];

  replica(): Replica {
    const r = new Replica();
    this.cleanups.push(() => r.close());
    return r;
  }

  /** A PagePrimary with the standard workload's transactions. */
  workload(): PagePrimary {
    const primary = new PagePrimary();
    this.cleanups.push(() => primary.close());
    standardWorkload(primary);
    return primary;
  }

  async dispose(): Promise<void> {
    for (const fn of this.cleanups.splice(0).reverse()) await fn();
    removeTempDirs();
  }
}

export class Replica {
  readonly paths = new NamespacePaths(tempDir());
  files = SqliteFiles.open(this.paths);
  applier: FrameApplier | null = null;

  async open(opts: Partial<FrameApplierOptions> = {}): Promise<FrameApplier> {
    this.applier = await FrameApplier.open({ paths: this.paths, files: this.files, logger: silentLogger(), ...opts });
    return this.applier;
  }

  /** Closes everything (as a process exit would) and opens again: recovery runs. */
  async reopen(opts: Partial<FrameApplierOptions> = {}): Promise<FrameApplier> {
    this.close();
    this.files = SqliteFiles.open(this.paths);
    return this.open(opts);
  }

  close(): void {
    this.applier?.close();
    this.applier = null;
    this.files.close();
  }

  expectAt(primary: PagePrimary, txn: LoggedTransaction): void {
    const state = inspectDb(this.paths.db);
    expect(state.integrity).toBe('ok');
    expect(state.dump).toBe(primary.dumps.get(txn.lastFrameNo));
    expect(readClientWalIndex(this.paths.clientWalIndex)?.committedFrameNo).toBe(txn.lastFrameNo);
    expect(unappliedRedo(this.paths, txn.lastFrameNo)).toEqual([]);
  }
}
