/**
 * What `bottomless restore` does once its flags are parsed, shared by the oclif command
 * (commands/bottomless/restore.ts) and the start-up fast path that runs it without oclif
 * (fast-restore.ts): nothing here imports oclif.
 */
import path from 'node:path';
import type { SingleBar } from 'cli-progress';
import type { RestoreProgress, RestoreReport } from '../backup/restore/restore.js';
import { type BottomlessFlagValues, parseGenerationFlag, parseTimeFlag, resolveBottomlessTarget, toJson, withStorage } from './bottomless-target.js';

/** The flags of `bottomless restore`, parsed. */
export interface RestoreFlagValues extends BottomlessFlagValues {
  json: boolean;
  generation?: string | undefined;
  'utc-time'?: string | undefined;
  output?: string | undefined;
  force: boolean;
  'allow-gaps': boolean;
}

/** Where the command prints: `log` to stdout, `logToStderr` to stderr (one line each). */
export interface CommandOutput {
  log(line: string): void;
  logToStderr(line: string): void;
}

type Fmt = (d: Date) => string;
type Bars = typeof import('cli-progress');

/** Progress on stderr: a bar on a terminal (`bars` given), a few plain lines otherwise. */
function progressReporter(bars: Bars | null, write: (line: string) => void): { onProgress: (p: RestoreProgress) => void; stop: () => void } {
  const tty = bars !== null;
  let bar: SingleBar | null = null;
  let phase = '';
  let lastTenth = -1;
  const stop = (): void => {
    bar?.stop();
    bar = null;
  };
  const onProgress = (p: RestoreProgress): void => {
    if (p.phase !== phase) {
      stop();
      phase = p.phase;
      lastTenth = -1;
      if (p.phase === 'plan') write(`restoring from a chain of ${p.generations} generation(s)`);
      if (p.phase === 'snapshot') write(`downloading the snapshot (${p.totalBytes} bytes compressed)`);
      if (p.phase === 'batches') write(`applying ${p.total} batch(es)`);
      if (p.phase === 'check') write('checking the restored database');
      if (tty && (p.phase === 'snapshot' || p.phase === 'batches')) {
        bar = new bars.SingleBar({ stream: process.stderr, clearOnComplete: true, hideCursor: true, format: `${p.phase} [{bar}] {percentage}% {value}/{total}` }, bars.Presets.shades_classic);
        bar.start(p.phase === 'snapshot' ? Math.max(1, p.totalBytes) : Math.max(1, p.total), 0);
      }
    }
    const [done, total] = p.phase === 'snapshot' ? [p.bytes, p.totalBytes] : p.phase === 'batches' ? [p.done, p.total] : [0, 0];
    if (bar !== null) bar.update(done);
    else if (total > 0 && p.phase === 'batches') {
      const tenth = Math.floor((done * 10) / total);
      if (tenth > lastTenth) {
        lastTenth = tenth;
        write(`  ${done}/${total} batches, ${p.frames} frames`);
      }
    }
  };
  return { onProgress, stop };
}

/** The human summary of a restore. */
function describeRestore(r: RestoreReport, formatUtc: Fmt): string[] {
  const lines = [`Restored ${r.db} generation ${r.generation} into ${r.out}`];
  const snap = r.snapshot === null ? 'no snapshot (started from an empty database)' : `snapshot ${r.snapshot.key} (${r.snapshot.pageCount} pages${r.snapshot.digestVerified ? `, ${r.snapshot.digest ?? 'digest'} verified` : ''})`;
  lines.push(`  chain: ${r.chain.length} generation(s), ${snap}`);
  lines.push(`  applied: ${r.transactions} transaction(s), ${r.frames} frame(s) from ${r.batches} batch(es)${r.framesDiscarded > 0 ? `; ${r.framesDiscarded} uncommitted frame(s) left out` : ''}`);
  lines.push(`  database: ${r.pageCount} pages of ${r.pageSize} bytes`);
  if (r.lastCommit !== null) lines.push(`  last commit: ${formatUtc(r.lastCommit.at)} UTC${r.lastCommit.exact ? '' : ' (time of its batch)'}`);
  if (r.time !== null) {
    const how = r.precision === 'commit' ? 'to one commit (libsqlctl commit times)' : 'to one batch (batches without commit times, e.g. made by sqld)';
    lines.push(`  point in time: ${formatUtc(r.time)} UTC, precision ${how}`);
  }
  if (r.gaps.length > 0) lines.push(`  STOPPED AT A GAP (--allow-gaps): ${r.gaps[0]!.detail}; this is the last consistent state before it`);
  if (r.laterGaps.length > 0 && r.gaps.length === 0) lines.push(`  note: the backup has a gap after the point restored to: ${r.laterGaps[0]!.detail}`);
  lines.push(`  checks: ${r.checks.map((c) => `${c.name} ${c.status}`).join(', ')}`);
  return lines;
}

/** Runs the restore the flags ask for. */
export async function runRestore(flags: RestoreFlagValues, out: CommandOutput): Promise<void> {
  const target = await resolveBottomlessTarget(flags);
  const generation = await parseGenerationFlag(flags.generation);
  const time = await parseTimeFlag(flags['utc-time']);
  const { report, formatUtc } = await withStorage(target, async (opened) => {
    // The plan's first requests go out now; the restore's modules load while the store answers.
    // (Not for --utc-time: its plan starts with another listing.)
    const storage = time === undefined ? (await import('../backup/restore/prefetch.js')).prefetchRestore(opened, target.db, generation ?? null) : opened;
    // The data-directory target (and the engine modules it needs) only when it is the target.
    const [{ restoreDatabase }, into, utc] = await Promise.all([
      import('../backup/restore/restore.js'),
      flags.output === undefined ? import('../backup/restore/target.js') : null,
      import('../backup/restore/utc-format.js'),
    ]);
    const bars = !flags.json && process.stderr.isTTY ? await import('cli-progress') : null;
    const progress = flags.json ? null : progressReporter(bars, (line) => out.logToStderr(line));
    const common = {
      storage,
      db: target.db,
      ...(generation === undefined ? {} : { generation }),
      ...(time === undefined ? {} : { time }),
      allowGaps: flags['allow-gaps'],
      verifyCrc: target.config.verifyCrc,
      parallel: target.config.parallelMax,
      prefer: target.config.compression,
      ...(progress === null ? {} : { onProgress: progress.onProgress }),
    };
    try {
      const done = await (into !== null
        ? into.restoreIntoDataDir({ ...common, dataDir: target.dataDir, namespace: target.namespace, force: flags.force })
        : restoreDatabase({ ...common, out: path.resolve(flags.output!), replace: flags.force }));
      return { report: done, formatUtc: utc.formatUtc };
    } finally {
      progress?.stop();
    }
  });
  if (flags.json) out.log(toJson(report));
  else {
    for (const line of describeRestore(report, formatUtc)) out.log(line);
    out.log('Verification: ok');
  }
}
