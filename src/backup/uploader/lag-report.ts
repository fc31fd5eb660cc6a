/**
 * The upload lag in the log (docs/BOTTOMLESS.md "Uploader"): a warning once committed frames have
 * waited `warnAfterMs` for the store, again at most every `repeatMs` while the lag keeps growing (the
 * frames and the age of the oldest commit not yet durable, the last store error), and one line when
 * it is back to 0 after a warning. Driven by the uploader's events (commits, finished uploads): no
 * timer, so an idle server stays idle.
 *
 * Commit times are kept as samples, one per `SAMPLE_MS` of commits (the first commit's time, the
 * last frame of the range): the age of the oldest frame not yet durable is known to within one
 * sample, in bounded memory (past `MAX_SAMPLES`, neighbours merge and samples get coarser).
 */
import type { Logger } from '../../engine/logger.js';

const SAMPLE_MS = 1000;
const MAX_SAMPLES = 4096;

interface Sample {
  /** Last log frame of the commits sampled here. */
  lastFrameNo: bigint;
  /** Commit time of the first of them. */
  atMs: number;
}

export interface LagNumbers {
  lastCommittedFrameNo: bigint | null;
  lastDurableFrameNo: bigint | null;
  uploadLagFrames: number;
  lastError: string | null;
}

export interface LagReportOptions {
  logger: Logger;
  /** `bottomless <db>`, the start of every line. */
  what: string;
  now: () => number;
  warnAfterMs: number;
  repeatMs: number;
}

export class LagReport {
  private samples: Sample[] = [];
  private sampleMs = SAMPLE_MS;
  /** The last warning of this lagging stretch (null: none yet). */
  private warned: { atMs: number; frames: number } | null = null;
  private peak = { frames: 0, ageMs: 0 };

  constructor(private readonly o: LagReportOptions) {}

  /** A transaction committed at `atMs`, its last frame `lastFrameNo`. */
  committed(lastFrameNo: bigint, atMs: number): void {
    // A new log numbers frames from the start again: what was sampled before says nothing now.
    if ((this.samples.at(-1)?.lastFrameNo ?? -1n) > lastFrameNo) this.samples.length = 0;
    const last = this.samples.at(-1);
    if (last !== undefined && atMs >= last.atMs && atMs - last.atMs < this.sampleMs) {
      last.lastFrameNo = lastFrameNo;
      return;
    }
    this.samples.push({ lastFrameNo, atMs });
    if (this.samples.length > MAX_SAMPLES) this.coarsen();
  }

  /** Where the uploader stands now (after a commit or an upload). */
  update(n: LagNumbers): void {
    if (n.uploadLagFrames <= 0) {
      this.samples.length = 0;
      if (this.warned !== null) {
        this.o.logger.info(`${this.o.what}: upload lag back to 0: every committed frame is in the store (it peaked at ${this.peak.frames} frames, ${seconds(this.peak.ageMs)} s)`);
      }
      this.warned = null;
      this.peak = { frames: 0, ageMs: 0 };
      return;
    }
    const durable = n.lastDurableFrameNo;
    let drop = 0;
    while (drop < this.samples.length && durable !== null && this.samples[drop]!.lastFrameNo <= durable) drop++;
    if (drop > 0) this.samples.splice(0, drop);
    const committed = n.lastCommittedFrameNo;
    if (committed !== null && (this.samples.at(-1)?.lastFrameNo ?? -1n) > committed) this.samples.length = 0;
    const now = this.o.now();
    // Frames that lag with no sample (staged again from the log at start-up): lagging from now on.
    if (this.samples.length === 0 && committed !== null) this.samples.push({ lastFrameNo: committed, atMs: now });
    const oldest = this.samples[0];
    if (oldest === undefined) return;
    const ageMs = now - oldest.atMs;
    if (n.uploadLagFrames > this.peak.frames) this.peak.frames = n.uploadLagFrames;
    if (ageMs > this.peak.ageMs) this.peak.ageMs = ageMs;
    if (ageMs < this.o.warnAfterMs) return;
    const w = this.warned;
    if (w !== null && (now - w.atMs < this.o.repeatMs || n.uploadLagFrames <= w.frames)) return;
    this.warned = { atMs: now, frames: n.uploadLagFrames };
    const cause = n.lastError === null ? '' : ` (last error: ${n.lastError})`;
    this.o.logger.warn(`${this.o.what}: upload lag: ${n.uploadLagFrames} committed frames are not in the store yet, the oldest committed ${seconds(ageMs)} s ago${cause}`);
  }

  /** Neighbours merge: half the samples, each twice as coarse. */
  private coarsen(): void {
    const merged: Sample[] = [];
    for (let i = 0; i < this.samples.length; i += 2) {
      const a = this.samples[i]!;
      const b = this.samples[i + 1];
      merged.push({ lastFrameNo: b?.lastFrameNo ?? a.lastFrameNo, atMs: a.atMs });
    }
    this.samples = merged;
    this.sampleMs *= 2;
  }
}

function seconds(ms: number): number {
  return Math.round(ms / 1000);
}
