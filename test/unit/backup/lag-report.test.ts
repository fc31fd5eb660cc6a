/**
 * The upload lag in the log (src/backup/uploader/lag-report.ts): a warning once the oldest commit not
 * in the store is old enough, repeated at most once per interval and only while the lag grows, one
 * line when it is back to 0; a lag that is only the batch interval never warns. Driven by a fake
 * clock; the last test goes through a real namespace and its uploader.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LagReport, type LagNumbers } from '../../../src/backup/uploader/lag-report.js';
import { LEVEL, LogCapture } from '../../helpers/log-capture.js';
import { FakeClock, Harness, writeRows } from './uploader-fixtures.js';

const WARN_MS = 60_000;
const REPEAT_MS = 30_000;

function setup(): { clock: FakeClock; log: LogCapture; lag: LagReport } {
  const clock = new FakeClock();
  const log = new LogCapture();
  const lag = new LagReport({ logger: log.logger, what: 'bottomless db', now: () => clock.now(), warnAfterMs: WARN_MS, repeatMs: REPEAT_MS });
  return { clock, log, lag };
}

function numbers(committed: bigint, durable: bigint | null, lastError: string | null = null): LagNumbers {
  return { lastCommittedFrameNo: committed, lastDurableFrameNo: durable, uploadLagFrames: Number(committed - (durable ?? 0n)), lastError };
}

const warnings = (log: LogCapture): string[] => log.find(/upload lag/, LEVEL.warn).map((l) => l.msg);
const recoveries = (log: LogCapture): string[] => log.find(/upload lag back to 0/, LEVEL.info).map((l) => l.msg);

describe('upload lag report', () => {
  it('warns once the oldest commit not in the store is old enough, repeats only while the lag grows, and says when it is back to 0', () => {
    const { clock, log, lag } = setup();
    let frame = 10n;
    const commit = (frames: bigint, durable: bigint | null, err: string | null = null): void => {
      frame += frames;
      lag.committed(frame, clock.now());
      lag.update(numbers(frame, durable, err));
    };
    // The store is gone after frame 10: commits every 10 s.
    for (let i = 0; i < 6; i++) {
      commit(5n, 10n, 'upload: connect ECONNREFUSED');
      clock.advance(10_000);
    }
    expect(warnings(log)).toEqual([]);
    commit(5n, 10n, 'upload: connect ECONNREFUSED');
    expect(warnings(log)).toEqual(['bottomless db: upload lag: 35 committed frames are not in the store yet, the oldest committed 60 s ago (last error: upload: connect ECONNREFUSED)']);
    // Growing, but within the repeat interval: nothing more.
    for (let i = 0; i < 2; i++) {
      clock.advance(10_000);
      commit(5n, 10n);
    }
    expect(warnings(log)).toHaveLength(1);
    clock.advance(10_000);
    commit(5n, 10n);
    expect(warnings(log)).toHaveLength(2);
    expect(warnings(log)[1]).toBe('bottomless db: upload lag: 50 committed frames are not in the store yet, the oldest committed 90 s ago');
    // Past the interval again, but not growing (an upload went through, no commit): nothing.
    clock.advance(40_000);
    lag.update(numbers(frame, 12n));
    expect(warnings(log)).toHaveLength(2);
    expect(recoveries(log)).toEqual([]);
    lag.update(numbers(frame, frame));
    expect(recoveries(log)).toEqual(['bottomless db: upload lag back to 0: every committed frame is in the store (it peaked at 50 frames, 130 s)']);
    // A new stretch starts from scratch; a short lag is no news.
    commit(1n, frame);
    clock.advance(5000);
    lag.update(numbers(frame, frame));
    expect([warnings(log).length, recoveries(log).length]).toEqual([2, 1]);
  });

  it('a lag that never reaches 0 but stays younger than the threshold (a steady load) never warns', () => {
    const { clock, log, lag } = setup();
    const durableAt: bigint[] = [];
    // A commit of 3 frames every second; the store holds everything up to 20 s ago.
    for (let s = 0; s < 600; s++) {
      const last = BigInt(3 * (s + 1));
      durableAt.push(last);
      lag.committed(last, clock.now());
      lag.update(numbers(last, s >= 20 ? durableAt[s - 20]! : null));
      clock.advance(1000);
    }
    expect(warnings(log)).toEqual([]);
  });

  it('the age stays right with commits spread over hours (samples merge, within a few seconds)', () => {
    const { clock, log, lag } = setup();
    // 20 000 commits, one every second, the store stopped at frame 10 000.
    for (let i = 1n; i <= 20_000n; i++) {
      lag.committed(i, clock.now());
      clock.advance(1000);
    }
    lag.update(numbers(20_000n, 10_000n));
    const msg = warnings(log)[0] ?? '';
    const age = Number(/committed (\d+) s ago/.exec(msg)?.[1]);
    expect(age).toBeGreaterThanOrEqual(10_000);
    expect(age).toBeLessThanOrEqual(10_000 + 16);
  });

  it('a new log (frame numbers start again) forgets what was sampled before', () => {
    const { clock, log, lag } = setup();
    lag.committed(5000n, clock.now());
    clock.advance(120_000);
    lag.committed(3n, clock.now());
    lag.update(numbers(3n, null));
    expect(warnings(log)).toEqual([]);
  });
});

describe('upload lag report: in the uploader', () => {
  let h: Harness | null = null;
  afterEach(async () => {
    await h?.dispose();
    h = null;
  });

  it('a store that refuses every put for minutes (clock) is logged with the lag; the catch-up is logged too; no timer of its own', async () => {
    h = new Harness();
    const log = new LogCapture('info');
    h.logger = log.logger;
    const ns = await h.open(join(h.root, 'ns'));
    const backup = await h.attach(ns, { batchMaxFrames: 4 });
    const conn = ns.connect();
    await writeRows(conn, 2);
    await backup.flush();
    h.storage.failing = () => true;
    await writeRows(conn, 3);
    await expect.poll(() => h!.storage.failures, { timeout: 5000 }).toBeGreaterThan(0);
    expect(warnings(log)).toEqual([]);
    // Two batch intervals (the test config's 60 s) is the threshold here, more than lagWarnMs.
    h.clock.advance(121_000);
    await writeRows(conn, 1);
    const lagging = backup.status().uploadLagFrames;
    expect(lagging).toBeGreaterThan(0);
    expect(warnings(log)).toHaveLength(1);
    expect(warnings(log)[0]).toMatch(new RegExp(`^bottomless ns-test:default: upload lag: ${lagging} committed frames are not in the store yet, the oldest committed 121 s ago \\(last error: `));
    h.storage.failing = () => false;
    await backup.flush();
    expect(backup.status()).toMatchObject({ uploadLagFrames: 0, timersArmed: 0 });
    expect(recoveries(log)).toHaveLength(1);
    expect(warnings(log)).toHaveLength(1);
  });
});
