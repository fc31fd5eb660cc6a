/**
 * `<ns>/bottomless/state.json`: what the uploader needs to continue after a restart (docs/BOTTOMLESS.md
 * "Uploader"). Replaced atomically (temp file, fsync, rename, fsync of the directory) after every
 * staged batch and at every change of a generation's upload status, never per commit. A batch is
 * handed to the store only once this file names it, so everything in the store is in the file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DIGEST_HEX, type SnapshotDigest } from '../format/digest.js';
import { isGenerationId } from '../format/generation-id.js';
import { writeAtomically } from '../../engine/wal/fs-util.js';
import type { GenCoords, PersistedGeneration, SnapshotInfo, SnapshotState } from './generation.js';

export const STATE_VERSION = 1;

export interface UploaderState {
  version: number;
  dbName: string;
  logId: string;
  /** The generation frames go to now, null when none is open. */
  current: string | null;
  /** The newest generation id ever made here (the next one must sort before it). */
  newestGeneration: string | null;
  /** Log frame number of the last frame dealt with (staged, covered by a snapshot, or given up). */
  lastFrameNo: bigint | null;
  /** A new generation without `.dep` and with a snapshot is needed, and why. */
  awaitingFresh: string | null;
  gensSinceSnapshot: number;
  walBytesSinceSnapshot: number;
  cleanShutdown: boolean;
  /** Generations whose upload is not finished, and the current one; oldest first. */
  generations: PersistedGeneration[];
}

export function writeState(file: string, state: UploaderState): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const text = JSON.stringify({ ...state, lastFrameNo: state.lastFrameNo === null ? null : state.lastFrameNo.toString() });
  writeAtomically(file, (fd) => fs.writeSync(fd, text), { durable: true });
}

/** The state, null when there is none; throws when the file exists but is damaged (the caller starts anew). */
export function readState(file: string): UploaderState | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const raw = JSON.parse(text) as unknown;
  return validate(raw);
}

function fail(what: string): never {
  throw new Error(`bottomless state file: ${what}`);
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const isU32 = (v: unknown): v is number => isInt(v) && v >= 0 && v <= 0xffff_ffff;
const isPair = (v: unknown): v is [number, number] => Array.isArray(v) && v.length === 2 && isU32(v[0]) && isU32(v[1]);
const SNAPSHOT_STATES: readonly SnapshotState[] = ['none', 'staged', 'uploaded', 'lost'];

function coords(v: unknown): GenCoords | null {
  if (v === null) return null;
  const c = v as Record<string, unknown>;
  if (!isInt(c.walGeneration) || !isU32(c.salt1) || !isU32(c.salt2) || typeof c.bigEndian !== 'boolean' || !isPair(c.seed) || !isInt(c.pageSize) || typeof c.synthetic !== 'boolean') {
    fail('bad coordinates');
  }
  return { walGeneration: c.walGeneration, salt1: c.salt1, salt2: c.salt2, bigEndian: c.bigEndian, seed: [c.seed[0], c.seed[1]], pageSize: c.pageSize, synthetic: c.synthetic };
}

/** A staged snapshot's digest: `digest`, or the `sha256` of state files written before the CRC. */
function digestOf(s: Record<string, unknown>): SnapshotDigest {
  if (typeof s.sha256 === 'string' && s.digest === undefined && DIGEST_HEX.sha256.test(s.sha256)) return { kind: 'sha256', hex: s.sha256 };
  const d = s.digest as Record<string, unknown> | undefined;
  const kind = d?.kind;
  if ((kind !== 'crc64' && kind !== 'sha256') || typeof d?.hex !== 'string' || !DIGEST_HEX[kind].test(d.hex)) fail('bad snapshot digest');
  return { kind, hex: d.hex };
}

function snapshotInfo(v: unknown): SnapshotInfo | null {
  if (v === null) return null;
  const s = v as Record<string, unknown>;
  if (typeof s.name !== 'string' || !isInt(s.pageCount) || !isU32(s.changeCounter) || !isInt(s.bytes)) fail('bad snapshot info');
  return { name: s.name, digest: digestOf(s), pageCount: s.pageCount, changeCounter: s.changeCounter, bytes: s.bytes };
}

function generation(v: unknown): PersistedGeneration {
  const g = v as Record<string, unknown>;
  const bools = ['metaUploaded', 'depUploaded', 'snapshotRequired', 'counterUploaded', 'baseDurable', 'sealed', 'damaged'] as const;
  if (typeof g.id !== 'string' || !isGenerationId(g.id)) fail('bad generation id');
  if (typeof g.logId !== 'string') fail('bad generation log id');
  if (g.parent !== null && (typeof g.parent !== 'string' || !isGenerationId(g.parent))) fail('bad parent');
  if (typeof g.base !== 'string' || !/^-?\d+$/.test(g.base)) fail('bad base');
  if (!isInt(g.stagedIndex) || g.stagedIndex < 0 || !isPair(g.checksum)) fail('bad staging cursor');
  if (!SNAPSHOT_STATES.includes(g.snapshot as SnapshotState)) fail('bad snapshot state');
  for (const b of bools) if (typeof g[b] !== 'boolean') fail(`bad ${b}`);
  return {
    id: g.id,
    logId: g.logId,
    parent: g.parent,
    base: g.base,
    coords: coords(g.coords),
    stagedIndex: g.stagedIndex,
    checksum: [g.checksum[0], g.checksum[1]],
    metaUploaded: g.metaUploaded as boolean,
    depUploaded: g.depUploaded as boolean,
    snapshot: g.snapshot as SnapshotState,
    snapshotRequired: g.snapshotRequired as boolean,
    snapshotInfo: snapshotInfo(g.snapshotInfo),
    counterUploaded: g.counterUploaded as boolean,
    baseDurable: g.baseDurable as boolean,
    sealed: g.sealed as boolean,
    damaged: g.damaged as boolean,
  };
}

function validate(raw: unknown): UploaderState {
  if (typeof raw !== 'object' || raw === null) fail('not an object');
  const s = raw as Record<string, unknown>;
  if (s.version !== STATE_VERSION) fail(`unknown version ${String(s.version)}`);
  if (typeof s.dbName !== 'string' || typeof s.logId !== 'string') fail('bad dbName or logId');
  if (s.current !== null && typeof s.current !== 'string') fail('bad current');
  if (s.newestGeneration !== null && (typeof s.newestGeneration !== 'string' || !isGenerationId(s.newestGeneration))) fail('bad newestGeneration');
  if (s.lastFrameNo !== null && (typeof s.lastFrameNo !== 'string' || !/^\d+$/.test(s.lastFrameNo))) fail('bad lastFrameNo');
  if (s.awaitingFresh !== null && typeof s.awaitingFresh !== 'string') fail('bad awaitingFresh');
  if (!isInt(s.gensSinceSnapshot) || !isInt(s.walBytesSinceSnapshot) || typeof s.cleanShutdown !== 'boolean') fail('bad counters');
  if (!Array.isArray(s.generations)) fail('bad generations');
  const generations = s.generations.map(generation);
  if (s.current !== null && !generations.some((g) => g.id === s.current)) fail('the current generation is not listed');
  return {
    version: STATE_VERSION,
    dbName: s.dbName,
    logId: s.logId,
    current: s.current,
    newestGeneration: s.newestGeneration,
    lastFrameNo: s.lastFrameNo === null ? null : BigInt(s.lastFrameNo),
    awaitingFresh: s.awaitingFresh,
    gensSinceSnapshot: s.gensSinceSnapshot,
    walBytesSinceSnapshot: s.walBytesSinceSnapshot,
    cleanShutdown: s.cleanShutdown,
    generations,
  };
}
