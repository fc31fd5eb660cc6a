/**
 * Which generations a restore reads, and which of their batches: from the chosen generation back
 * along `.dep` (at most MAX_CHAIN) to the nearest one with a snapshot, then, in each generation,
 * the batches that continue frame by frame from frame 1. The first discontinuity of a generation
 * (a hole, an overlap, batches without `.meta`, frames our durable marker says exist but are not
 * there) is recorded as its gap: restore refuses it or stops there, it never skips it.
 *
 * The generations' objects come from one listing of the database's keys from the chosen generation
 * on (from the start for the newest, which is then the listing's first generation: key-scan.ts).
 * Every generation up to the first one with a snapshot is read as soon as the listing shows it, all
 * at once, and the walk reads a few generations ahead in listing order beyond that (where a
 * generation's parent normally is), so a long chain costs a few round trips, not one per generation.
 */
import { isGenerationId } from '../format/generation-id.js';
import type { Compression } from '../format/layout.js';
import type { BackupStorage, ObjectInfo } from '../storage/storage.js';
import {
  type BatchObject,
  type GenerationInfo,
  generationAtOrBefore,
  listedSnapshot,
  readGeneration,
  readTombstone,
  type SnapshotObject,
} from './catalog.js';
import { KeyScan } from './key-scan.js';
import { BackupNotFoundError, BackupTombstonedError, BackupUnusableError, type FrameGap } from './errors.js';
import { formatUtc } from './utc-format.js';

/** Generations a chain may hold (bottomless' limit). */
export const MAX_CHAIN = 100;

export type GapKind = FrameGap['kind'];
export type PlannedGap = FrameGap;

export interface PlannedGeneration {
  info: GenerationInfo;
  /** Contiguous batches from frame 1, up to the gap if there is one. */
  batches: BatchObject[];
  gap: PlannedGap | null;
}

export interface RestorePlan {
  db: string;
  /** The generation asked for (or chosen by time, or the newest). */
  generation: string;
  /** Oldest first: the snapshot's generation (or the chain's end), then each child. */
  chain: PlannedGeneration[];
  /** No generation of the chain has a snapshot: the restore starts from an empty file. */
  fromEmpty: boolean;
  tombstone: number | null;
}

export interface PlanOptions {
  generation?: string;
  time?: Date;
  prefer?: Compression;
  /**
   * Called once, as soon as the listing shows a snapshot in the chosen generation or one after it
   * (where its chain normally ends), before the chain is known: a restore starts downloading it
   * early, and uses the download only if the plan's snapshot is the same object. The plan's own
   * reads wait until the promise it returns settles (the snapshot's answer has begun): the store
   * serves the restore's longest request first, not after the plan's few dozen small ones.
   */
  onSnapshotListed?: (snapshot: Omit<SnapshotObject, 'metadata'>) => Promise<unknown> | void;
  /**
   * Read `.meta` and `.dep` even where the durable marker carries copies of them, and check that
   * they agree (verify); by default a generation with such a marker costs one small read.
   */
  readEveryObject?: boolean;
}

function tombstoned(gen: GenerationInfo, tombstone: number | null): boolean {
  return tombstone !== null && gen.createdSecs <= tombstone;
}

function noGeneration(storage: BackupStorage, db: string, time: Date | undefined): BackupNotFoundError {
  const where = `${db} in ${storage.description}`;
  if (time === undefined) return new BackupNotFoundError(`no generations of ${where}`, 'check -n/--db-name, the bucket and the endpoint (`bottomless ls` lists what is there)');
  return new BackupNotFoundError(`no generation of ${where} was created at or before ${formatUtc(time)} UTC`, 'pick a later --utc-time (`bottomless ls` shows when each generation was created)');
}

/** The generation asked for, or the one chosen by time; null: the newest (the first of a scan from the start). */
async function chooseGeneration(storage: BackupStorage, db: string, opts: PlanOptions): Promise<string | null> {
  if (opts.generation !== undefined) {
    if (!isGenerationId(opts.generation)) throw new BackupNotFoundError(`${opts.generation} is not a generation id`, 'generation ids are version-7 UUIDs as `bottomless ls` prints them');
    return opts.generation;
  }
  if (opts.time === undefined) return null;
  const gen = await generationAtOrBefore(storage, db, opts.time);
  if (gen !== null) return gen;
  throw noGeneration(storage, db, opts.time);
}

/** Generations read ahead of the walk along `.dep`, in listing order (a parent is normally the next older one). */
const READ_AHEAD = 8;

/** Reads of generations, each started once; a read ahead that fails surfaces only when its generation is needed. */
class GenerationReads {
  private readonly reads = new Map<string, Promise<GenerationInfo>>();

  /** `gate`: no read goes out before it settles. */
  constructor(
    private readonly storage: BackupStorage,
    private readonly db: string,
    private readonly scan: KeyScan,
    private readonly prefer: Compression | undefined,
    private readonly gate: Promise<unknown>,
    private readonly markerFirst: boolean,
  ) {}

  get(gen: string): Promise<GenerationInfo> {
    let read = this.reads.get(gen);
    if (read === undefined) {
      read = Promise.all([this.scan.objectsOf(gen), this.gate]).then(([listed]) => this.read(gen, listed));
      read.catch(() => undefined);
      this.reads.set(gen, read);
    }
    return read;
  }

  /** Starts the read of `gen` from its objects, just listed in full. */
  listed(gen: string, objects: readonly ObjectInfo[]): void {
    if (this.reads.has(gen)) return;
    const read = this.gate.then(() => this.read(gen, objects));
    read.catch(() => undefined);
    this.reads.set(gen, read);
  }

  private read(gen: string, listed: readonly ObjectInfo[] | undefined): Promise<GenerationInfo> {
    return readGeneration(this.storage, this.db, gen, { prefer: this.prefer, ...(listed === undefined ? {} : { listed }), changeCounter: false, snapshotHead: false, markerFirst: this.markerFirst });
  }

  ahead(gens: readonly string[]): void {
    for (const gen of gens) void this.get(gen);
  }
}

/**
 * Builds the plan; reads the tombstone and every generation of the chain (not their batches).
 *
 * One listing from the chosen generation (from the start for the newest: its first generation is
 * the newest) is driven on, as its pages come in, until it shows a generation with a snapshot,
 * where the chain normally ends; each generation up to there is read as soon as it is listed, all
 * at once, and the snapshot is announced (onSnapshotListed) at the same moment. The walk along
 * `.dep` then mostly waits for reads already in flight.
 */
export async function planRestore(storage: BackupStorage, db: string, opts: PlanOptions = {}): Promise<RestorePlan> {
  const tombstoneRead = readTombstone(storage, db);
  tombstoneRead.catch(() => undefined); // awaited below, after the generation is chosen (its errors first)
  const chosen = await chooseGeneration(storage, db, opts);
  let reads: GenerationReads | null = null;
  let sawSnapshot = false;
  // With an early snapshot download, the generations' reads wait for its answer (or until the
  // listing has gone as far as it looks for one without finding it).
  let openGate: (after: Promise<unknown> | void) => void = () => undefined;
  const gate = opts.onSnapshotListed === undefined ? Promise.resolve() : new Promise<unknown>((resolve) => (openGate = (after) => resolve(Promise.resolve(after).catch(() => undefined))));
  const onGroup = (gen: string, objects: readonly ObjectInfo[]): void => {
    if (sawSnapshot) return;
    const snapshot = listedSnapshot(db, gen, objects, opts.prefer);
    reads?.listed(gen, objects);
    if (snapshot === undefined) return;
    sawSnapshot = true;
    openGate(opts.onSnapshotListed?.(snapshot));
  };
  const scan = new KeyScan(storage, db, chosen, onGroup);
  reads = new GenerationReads(storage, db, scan, opts.prefer, gate, opts.readEveryObject !== true);
  try {
    const generation = chosen ?? (await scan.first());
    if (generation === null) throw noGeneration(storage, db, undefined);
    // In the background: its failure is the scan's, met by the walk at its next question.
    scan
      .extend(() => sawSnapshot || scan.listed >= MAX_CHAIN)
      .catch(() => undefined)
      .finally(() => openGate(undefined));
    return await walkChain(storage, db, generation, scan, reads, await tombstoneRead);
  } finally {
    await scan.close();
  }
}

/** From `generation` back along `.dep` to the nearest snapshot (or the chain's start). */
async function walkChain(storage: BackupStorage, db: string, generation: string, scan: KeyScan, reads: GenerationReads, tombstone: number | null): Promise<RestorePlan> {
  const chain: GenerationInfo[] = [];
  const seen = new Set<string>();
  let gen = generation;
  for (;;) {
    void reads.get(gen);
    reads.ahead(await scan.after(gen, READ_AHEAD));
    const info = await reads.get(gen);
    if (info.objectCount === 0) {
      if (chain.length === 0) throw new BackupNotFoundError(`generation ${gen} of ${db} has no objects in ${storage.description}`, '`bottomless ls` lists the generations there are');
      throw new BackupUnusableError(`generation ${chain.at(-1)!.generation} depends on ${gen} (its .dep), which has no objects (deleted?)`, 'restore a generation whose chain is complete (one with a snapshot: `bottomless ls -v`)');
    }
    if (tombstoned(info, tombstone)) {
      const at = `${formatUtc(new Date(tombstone! * 1000))} UTC`;
      throw new BackupTombstonedError(chain.length === 0 ? `generation ${gen} has been tombstoned at ${at}` : `generation ${generation} needs ${gen}, which has been tombstoned at ${at}`);
    }
    chain.push(info);
    seen.add(gen);
    if (info.snapshot !== null || info.parent === null) break;
    if (seen.has(info.parent)) throw new BackupUnusableError(`the .dep chain of ${generation} loops back to ${info.parent}`);
    if (chain.length >= MAX_CHAIN) throw new BackupUnusableError(`the chain of ${generation} reaches ${MAX_CHAIN} generations without a snapshot`, 'upload a fresh snapshot (`bottomless create`) or restore an older generation');
    gen = info.parent;
  }
  chain.reverse();
  const oldest = chain[0]!;
  const fromEmpty = oldest.snapshot === null;
  if (fromEmpty && (oldest.meta === null || oldest.batches.length === 0 || oldest.batches[0]!.first !== 1)) {
    throw new BackupUnusableError(
      `the chain of ${generation} has no snapshot, and its oldest generation ${oldest.generation} has no WAL (with its .meta) from frame 1 to start an empty database with`,
      'restore an older generation, or one whose chain has a snapshot (`bottomless ls -v`)',
    );
  }
  return { db, generation, chain: chain.map(planGeneration), fromEmpty, tombstone };
}

/** The batches of one generation that continue from frame 1, and the first discontinuity. */
export function planGeneration(info: GenerationInfo): PlannedGeneration {
  const gap = (kind: GapKind, fromFrame: number, toFrame: number | null, detail: string): PlannedGap => ({ generation: info.generation, kind, fromFrame, toFrame, detail });
  if (info.meta === null) {
    if (info.batches.length === 0) return { info, batches: [], gap: null };
    const b = info.batches[0]!;
    return { info, batches: [], gap: gap('no-meta', b.first, null, `${info.batches.length} batches but no .meta (page size and checksum seed unknown), first ${b.key}`) };
  }
  const batches: BatchObject[] = [];
  let expected = 1;
  for (const b of info.batches) {
    if (b.first !== expected) {
      const prev = batches.at(-1);
      const after = prev === undefined ? 'at the start of the generation' : `after ${prev.key}`;
      const detail =
        b.first > expected
          ? `frames ${expected}..${b.first - 1} are missing (${after}, before ${b.key})`
          : `batch ${b.key} overlaps frames already covered (${after})`;
      return { info, batches, gap: gap(b.first > expected ? 'hole' : 'overlap', expected, b.first > expected ? b.first - 1 : null, detail) };
    }
    batches.push(b);
    expected = b.last + 1;
  }
  const marker = info.durable;
  if (marker !== null && marker.lastFrame >= expected) {
    const last = batches.at(-1);
    const have = last === undefined ? 'there is no batch' : `the last batch is ${last.key}`;
    return {
      info,
      batches,
      gap: gap('lost-tail', expected, marker.lastFrame, `frames ${expected}..${marker.lastFrame} are missing: .libsqlctl-durable says frames up to ${marker.lastFrame} were stored, ${have}`),
    };
  }
  return { info, batches, gap: null };
}

/** Every gap of the plan, oldest generation first. */
export function planGaps(plan: RestorePlan): PlannedGap[] {
  return plan.chain.flatMap((g) => (g.gap === null ? [] : [g.gap]));
}
