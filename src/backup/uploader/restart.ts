/**
 * What an uploader does when it attaches to a namespace (docs/BOTTOMLESS.md "Uploader", restart):
 * compare its state file with the engine (log id, WAL generation and salts from the capture state)
 * and decide to continue the same generation, to continue it and open the next one, or to start a
 * fresh generation (no `.dep`, a snapshot). Also reconciles the staging folder with the state.
 */
import type { CaptureState } from '../../engine/log/capture-state.js';
import { encodeWalHeader } from '../../engine/wal/sqlite-wal-format.js';
import { PAGE_SIZE } from '../../engine/wal/frame.js';
import { parseBatchName } from '../format/layout.js';
import type { GenCoords, Generation } from './generation.js';
import { HEADERS_SUFFIX, type StagingDir } from './staging.js';
import type { UploaderState } from './state-file.js';
import { FIRST_START } from './core.js';

export interface EngineView {
  logId: string;
  replicationIndex: bigint | null;
  /** The engine's `wallog-capture` (where the current WAL generation sits in the log). */
  capture: CaptureState | null;
  /** First frame the log still holds (earlier ones were compacted into log snapshots). */
  logStart: bigint;
}

export type AttachPlan =
  /** Continue the state's current generation from `from`; frames from `splitAt` on open the next one. */
  | { kind: 'continue'; from: bigint; splitAt: bigint | null }
  /** A fresh generation whose snapshot is the database file, holding log frames after `base`. */
  | { kind: 'fresh'; reason: string; base: bigint }
  /** Nothing can be placed now: wait for the next WAL generation (a checkpoint is requested). */
  | { kind: 'await'; reason: string };

/** The log frame the database file's content equals (everything checkpointed), null when unknown. */
export function dbFileFrameNo(c: CaptureState | null, logId: string): bigint | null {
  if (!c || c.logId !== logId) return null;
  return c.genStartFrameNo - 1n + BigInt(c.checkpointedFrames ?? 0);
}

export function planAttach(state: UploaderState | null, engine: EngineView, dbName: string): AttachPlan {
  const last = engine.replicationIndex ?? -1n;
  const db = dbFileFrameNo(engine.capture, engine.logId);
  const fresh = (reason: string): AttachPlan => {
    if (db === null) return { kind: 'await', reason: `${reason}; where the database file stands in the log is unknown` };
    if (db < last && db + 1n < engine.logStart) return { kind: 'await', reason: `${reason}; the frames after the database file were compacted out of the log` };
    return { kind: 'fresh', reason, base: db };
  };
  if (!state) return fresh(`${FIRST_START} (bottomless starts on this database)`);
  if (state.dbName !== dbName) return fresh(`the uploader state belongs to database ${state.dbName}`);
  if (state.logId !== engine.logId) return fresh('the replication log is not the one the uploader knew (the database was replaced, or its log started anew)');
  if (state.awaitingFresh !== null) return fresh(state.awaitingFresh);
  const staged = state.lastFrameNo ?? -1n;
  if (staged > last) return fresh('the uploader state is ahead of the replication log');
  const cur = state.generations.find((g) => g.id === state.current);
  if (!cur) return fresh('no generation was open');
  if (cur.damaged) return fresh(`generation ${cur.id} lost frames`);
  if (staged < last && staged + 1n < engine.logStart) return fresh('frames committed since the last staged one were compacted out of the log');
  const c = engine.capture;
  if (!c || c.logId !== engine.logId) return fresh('the engine has no capture state for this log');
  if (cur.coords === null || (c.walGeneration === cur.coords.walGeneration && c.salt1 === cur.coords.salt1 && c.salt2 === cur.coords.salt2)) {
    return { kind: 'continue', from: staged + 1n, splitAt: null };
  }
  if (c.walGeneration < cur.coords.walGeneration || c.genStartFrameNo <= staged) return fresh('the WAL position of the engine and the uploader state disagree');
  return { kind: 'continue', from: staged + 1n, splitAt: c.genStartFrameNo };
}

/**
 * Coordinates for frames of a WAL generation the uploader never saw: the engine's salts, the
 * byte order given, and the seed a WAL header with those values would have. Restore only checks
 * that the chain holds from `.meta`, which it does.
 */
export function syntheticCoords(c: CaptureState | null, bigEndian: boolean): GenCoords {
  const salt1 = c?.salt1 ?? 0;
  const salt2 = c?.salt2 ?? 0;
  const { checksum } = encodeWalHeader({ bigEndian, pageSize: PAGE_SIZE, checkpointSeq: 0, salt1, salt2 });
  return { walGeneration: c?.walGeneration ?? 0, salt1, salt2, bigEndian, seed: checksum, pageSize: PAGE_SIZE, synthetic: true };
}

export interface Leftovers {
  /** Staged bytes found, and of which batches. */
  bytes: number;
  batchBytes: number;
}

/**
 * Matches what is in the staging folder with the generations of the state: batches the state
 * records are re-queued (listed in `gen.batches`), a recorded snapshot too; everything else was
 * never handed to the store and is deleted (the log still holds those frames).
 */
export function reconcileStaging(gens: readonly Generation[], scanned: Map<string, string[]>, staging: StagingDir): Leftovers {
  let bytes = 0;
  let batchBytes = 0;
  const byId = new Map(gens.map((g) => [g.id, g]));
  for (const [id, names] of scanned) {
    const gen = byId.get(id);
    if (!gen) {
      staging.removeGeneration(id);
      continue;
    }
    for (const name of names) {
      if (name.endsWith(HEADERS_SUFFIX)) {
        if (!names.includes(name.slice(0, -HEADERS_SUFFIX.length))) staging.removeSync(id, name);
        continue;
      }
      const size = staging.size(id, name) ?? 0;
      const batch = parseBatchName(name);
      if (batch && batch.last <= gen.stagedIndex) {
        gen.batches.push({ first: batch.first, last: batch.last, name, bytes: size, uploaded: false, dropped: false });
        bytes += size;
        batchBytes += size;
      } else if (!batch && gen.snapshot === 'staged' && gen.snapshotInfo?.name === name) {
        bytes += size;
      } else {
        staging.removeSync(id, name);
      }
    }
    gen.batches.sort((a, b) => a.first - b.first);
  }
  for (const gen of gens) {
    const names = scanned.get(gen.id) ?? [];
    if (gen.snapshot === 'staged' && !names.includes(gen.snapshotInfo?.name ?? '')) gen.snapshot = 'lost';
  }
  return { bytes, batchBytes };
}
