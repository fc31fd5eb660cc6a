import { createHash, randomBytes, randomInt } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { replayIntoFile } from '../../src/engine/wal/replay.js';
import { WallogFile } from '../../src/engine/wal/wallog-file.js';
import { startChildServer, stopChild, within, type ChildServer } from '../helpers/child-server.js';
import { crashScratch } from '../helpers/crash-scratch.js';
import { prng } from '../helpers/prng.js';
import { type Json, isObj, pipeline } from '../helpers/pipeline.js';

/**
 * Crash safety of `libsqlctl serve` (docs/REPLICATION_LOG.md): the server runs as a child process
 * under concurrent writes and is SIGKILLed at random moments. After each kill every acknowledged
 * write must be there, the database must be intact, and replaying the whole `wallog` into an empty
 * file must give the same database. Seed: KILL9_SEED=<n> (printed on failure).
 */

const ROUNDS = 6;
const WRITERS = 8;
const MAX_PAYLOAD = 8 * 1024;
const KILL_DELAY_MS: readonly [number, number] = [100, 700];
/** A writer that is still running this long after its round began means the kill did not land. */
const ROUND_LOAD_BOUND_MS = 10_000;
const REQUEST_TIMEOUT_MS = 10_000;
const SHUTDOWN_TIMEOUT_S = 3;
const UNCLEAN_RE = /did not shut down cleanly/;
const SEED = process.env.KILL9_SEED !== undefined ? Number(process.env.KILL9_SEED) : randomInt(2 ** 31);


const sha1 = (b: Uint8Array): string => createHash('sha1').update(b).digest('hex');

/** Every id ever sent (with the hash and length of its only payload) and the acknowledged ones. */
interface Ledger {
  sent: Map<string, string>;
  sizes: Map<string, number>;
  acked: Map<string, string>;
}

interface LoadResult {
  acked: number;
  /** Requests whose outcome is unknown (connection error), per writer at most one. */
  unknown: number;
  /** Answers that were neither an acknowledgement nor a connection error. */
  rejected: string[];
}


const text = (v: string): Json => ({ type: 'text', value: v });
const blob = (b: Buffer): Json => ({ type: 'blob', base64: b.toString('base64').replace(/=+$/, '') });
const INSERT = 'INSERT INTO t(id, payload) VALUES (?, ?)';

/** The ok response of pipeline result `i`, or null. */
function okResponse(body: unknown, i: number): Json | null {
  if (!isObj(body) || !Array.isArray(body.results)) return null;
  const r: unknown = body.results[i];
  return isObj(r) && r.type === 'ok' && isObj(r.response) ? r.response : null;
}

function affected(result: unknown): number | null {
  return isObj(result) && typeof result.affected_row_count === 'number' ? result.affected_row_count : null;
}

/** Did a pipeline of one insert (autocommit) or one BEGIN/INSERT/INSERT/COMMIT batch succeed? */
function acknowledged(body: unknown, batch: boolean): boolean {
  const res = okResponse(body, 0);
  if (res === null || okResponse(body, 1)?.type !== 'close') return false;
  if (!batch) return res.type === 'execute' && affected(res.result) === 1;
  if (res.type !== 'batch' || !isObj(res.result)) return false;
  const { step_results: results, step_errors: errors } = res.result;
  if (!Array.isArray(results) || !Array.isArray(errors)) return false;
  return errors.every((e) => e === null) && affected(results[1]) === 1 && affected(results[2]) === 1 && isObj(results[3]) && results[4] === null;
}


/** One statement that must succeed (schema, checks); returns its rows. */
async function execOk(url: string, sql: string): Promise<unknown[][]> {
  const r = await pipeline(url, [{ type: 'execute', stmt: { sql } }]);
  const res = okResponse(r.body, 0);
  if (r.status !== 200 || res === null || !isObj(res.result) || !Array.isArray(res.result.rows)) {
    throw new Error(`${sql}: HTTP ${r.status} ${r.raw.slice(0, 500)}`);
  }
  return res.result.rows.filter(Array.isArray);
}

interface LoadControl {
  /** Set by the bound; writers also stop at their first connection error. */
  stopped: boolean;
  /** Called on every acknowledgement. */
  onAck: () => void;
  /** HTTP statuses that mean "the server is going away" (treated as unknown, not rejected). */
  closingStatuses: ReadonlySet<number>;
}

/** One writer: inserts rows with ids `<tag>-<writer>-<seq>` until the server goes away. */
async function writer(url: string, tag: string, w: number, rand: () => number, ledger: Ledger, ctl: LoadControl, out: LoadResult): Promise<void> {
  let seq = 0;
  const row = (): { id: string; payload: Buffer } => {
    const payload = randomBytes(Math.floor(rand() * (MAX_PAYLOAD + 1)));
    const id = `${tag}-${w}-${seq++}`;
    ledger.sent.set(id, sha1(payload));
    ledger.sizes.set(id, payload.length);
    return { id, payload };
  };
  while (!ctl.stopped) {
    const batch = rand() < 0.4;
    const rows = batch ? [row(), row()] : [row()];
    const stmts = rows.map((r) => ({ sql: INSERT, args: [text(r.id), blob(r.payload)] }));
    const request: Json = batch
      ? {
          type: 'batch',
          batch: {
            steps: [
              { stmt: { sql: 'BEGIN' } },
              { condition: { type: 'ok', step: 0 }, stmt: stmts[0] },
              { condition: { type: 'ok', step: 1 }, stmt: stmts[1] },
              { condition: { type: 'ok', step: 2 }, stmt: { sql: 'COMMIT' } },
              { condition: { type: 'not', cond: { type: 'ok', step: 3 } }, stmt: { sql: 'ROLLBACK' } },
            ],
          },
        }
      : { type: 'execute', stmt: stmts[0] };
    let answer: Awaited<ReturnType<typeof pipeline>>;
    try {
      answer = await pipeline(url, [request]);
    } catch {
      out.unknown += 1;
      return;
    }
    if (answer.status === 200 && acknowledged(answer.body, batch)) {
      for (const r of rows) ledger.acked.set(r.id, sha1(r.payload));
      out.acked += rows.length;
      ctl.onAck();
      continue;
    }
    if (ctl.closingStatuses.has(answer.status)) out.unknown += 1;
    else out.rejected.push(`writer ${w} ${rows.map((r) => r.id).join(',')}: HTTP ${answer.status} ${answer.raw.slice(0, 300)}`);
    return;
  }
}

/**
 * Runs WRITERS writers against `server`; after the first acknowledgement and a random delay, sends
 * `sig`. Resolves when the server exited and every writer stopped.
 */
async function loadThenSignal(
  server: ChildServer,
  tag: string,
  rand: () => number,
  ledger: Ledger,
  sig: NodeJS.Signals,
  closingStatuses: ReadonlySet<number> = new Set(),
): Promise<LoadResult & { delayMs: number; exitMs: number }> {
  const out: LoadResult = { acked: 0, unknown: 0, rejected: [] };
  let firstAck!: () => void;
  const acked = new Promise<void>((resolve) => (firstAck = resolve));
  const ctl: LoadControl = { stopped: false, onAck: () => firstAck(), closingStatuses };
  const writers = Array.from({ length: WRITERS }, (_, w) => writer(server.url, tag, w, prng(Math.floor(rand() * 2 ** 31)), ledger, ctl, out));
  const bound = setTimeout(() => (ctl.stopped = true), ROUND_LOAD_BOUND_MS);
  const delayMs = KILL_DELAY_MS[0] + Math.floor(rand() * (KILL_DELAY_MS[1] - KILL_DELAY_MS[0] + 1));
  try {
    await within(acked, ROUND_LOAD_BOUND_MS, `first acknowledged write (${tag}); stderr:\n${server.stderr()}`);
    // The random moment of the signal: a deadline, not a wait for something that could be awaited.
    await new Promise<void>((resolve) => setTimeout(resolve, delayMs));
    const sentAt = performance.now();
    expect(server.signal(sig), `server alive when ${sig} was due`).toBe(true);
    await within(server.exited, ROUND_LOAD_BOUND_MS, `exit after ${sig}`);
    const exitMs = Math.round(performance.now() - sentAt);
    await within(Promise.all(writers), REQUEST_TIMEOUT_MS + 1000, 'writers to stop');
    expect(ctl.stopped, 'writers were stopped by the bound, not by the server going away').toBe(false);
    return { ...out, delayMs, exitMs };
  } finally {
    clearTimeout(bound);
    ctl.stopped = true;
  }
}

/** Checks over HTTP that every acknowledged id is there with its payload length. */
async function checkAckedOverHttp(url: string, ledger: Ledger): Promise<number> {
  const rows = await execOk(url, 'SELECT id, length(payload) FROM t');
  const present = new Map<string, number>();
  for (const [id, len] of rows) {
    if (isObj(id) && typeof id.value === 'string' && isObj(len) && typeof len.value === 'string') present.set(id.value, Number(len.value));
  }
  expect(present.size, 'rows of t parsed from the HTTP answer').toBe(rows.length);
  const missing = [...ledger.acked.keys()].filter((id) => !present.has(id));
  expect(missing, 'acknowledged ids missing after restart').toEqual([]);
  const wrongSize = [...ledger.acked.keys()].filter((id) => present.get(id) !== ledger.sizes.get(id));
  expect(wrongSize, 'acknowledged ids with a wrong payload length').toEqual([]);
  return present.size;
}

interface DbContent {
  rows: number;
  digest: string;
  schema: unknown[];
}

/** Integrity, schema and a digest of t (ids in order with their payloads); checks rows against the ledger. */
function inspect(file: string, ledger: Ledger): DbContent {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    expect(db.pragma('integrity_check', { simple: true }), `integrity_check of ${file}`).toBe('ok');
    const schema = db.prepare('SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name').all();
    // A database without t (a replay that lost it) is reported by the schema comparison.
    if (db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 't'").get() === undefined) return { rows: -1, digest: '', schema };
    const digest = createHash('sha256');
    let rows = 0;
    const foreign: string[] = [];
    const stmt = db.prepare<[], { id: string; payload: Buffer }>('SELECT id, payload FROM t ORDER BY id');
    for (const { id, payload } of stmt.iterate()) {
      rows += 1;
      const h = sha1(payload);
      if (ledger.sent.get(id) !== h) foreign.push(id);
      digest.update(id).update('\0').update(h).update('\n');
    }
    expect(foreign, `rows of ${file} never written with that content`).toEqual([]);
    return { rows, digest: digest.digest('hex'), schema };
  } finally {
    db.close();
  }
}

interface LogInfo {
  logId: string;
  startFrameNo: bigint;
  frames: bigint;
  transactions: number;
}

/** With the server stopped: the database is intact and equals the replay of its whole wallog. */
function checkDatabaseAndLog(nsDir: string, ledger: Ledger, scratch: string): LogInfo & { rows: number } {
  const real = inspect(path.join(nsDir, 'data'), ledger);
  expect(real.rows, 'rows in the database vs acknowledged').toBeGreaterThanOrEqual(ledger.acked.size);
  const log = WallogFile.open(path.join(nsDir, 'wallog'), { readOnly: true });
  const replayed = path.join(fs.mkdtempSync(path.join(scratch, 'replay-')), 'db');
  let info: LogInfo;
  try {
    expect(log.startFrameNo, 'the log was compacted; a replay of wallog alone is not the database').toBe(0n);
    const result = replayIntoFile(replayed, log.iterateFrames());
    expect(result.framesSkipped, 'uncommitted frames at the end of the log').toBe(0);
    info = { logId: log.logId, startFrameNo: log.startFrameNo, frames: log.frameCount, transactions: result.transactions };
  } finally {
    log.close();
  }
  const copy = inspect(replayed, ledger);
  expect(copy.schema, 'schema of the replayed log vs the database').toEqual(real.schema);
  expect(copy.rows, 'rows of the replayed log vs the database').toBe(real.rows);
  expect(copy.digest, 'content of the replayed log vs the database').toBe(real.digest);
  return { ...info, rows: real.rows };
}

const { dir: scratch, context, note } = crashScratch('libsqlctl-kill9-');

describe('crash safety of serve (child process)', () => {
  it(`SIGKILL under concurrent writes, ${ROUNDS} rounds: no acknowledged write lost, log replay equals the database`, async ({ onTestFailed }) => {
    context.length = 0;
    onTestFailed(() => console.error(`kill9 seed ${SEED} (rerun with KILL9_SEED=${SEED})\n${context.join('\n')}`));
    const rand = prng(SEED);
    const dbPath = path.join(scratch, 'kill9.sqld');
    const nsDir = path.join(dbPath, 'dbs', 'default');
    const ledger: Ledger = { sent: new Map(), sizes: new Map(), acked: new Map() };
    const summary: string[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      context.push(`=== round ${round}`);
      const loaded = await startChildServer(dbPath);
      note(`round ${round} load server`, loaded);
      expect(loaded.stderr(), `round ${round}: the previous (clean) stop was reported as unclean`).not.toMatch(UNCLEAN_RE);
      await execOk(loaded.url, 'CREATE TABLE IF NOT EXISTS t(id TEXT PRIMARY KEY, payload BLOB)');
      const ackedBefore = ledger.acked.size;
      const load = await loadThenSignal(loaded, `r${round}`, rand, ledger, 'SIGKILL');
      note(`round ${round} killed server`, loaded);
      expect(loaded.exitInfo()?.signal, `round ${round}: exit of the killed server`).toBe('SIGKILL');
      expect(load.rejected, `round ${round}: writes refused while the server was up`).toEqual([]);
      expect(fs.existsSync(path.join(nsDir, '.sentinel')), `round ${round}: .sentinel after SIGKILL`).toBe(true);

      const restarted = await startChildServer(dbPath);
      note(`round ${round} restarted server`, restarted);
      expect(restarted.stderr(), `round ${round}: recovery after SIGKILL`).toMatch(UNCLEAN_RE);
      const present = await checkAckedOverHttp(restarted.url, ledger);
      const stop = await stopChild(restarted);
      note(`round ${round} restarted server (stopped)`, restarted);
      expect(stop, `round ${round}: clean stop after recovery`).toEqual({ code: 0, signal: null });
      expect(fs.existsSync(path.join(nsDir, '.sentinel')), `round ${round}: .sentinel after a clean stop`).toBe(false);
      const log = checkDatabaseAndLog(nsDir, ledger, scratch);
      const newLog = /starting a new log/.test(restarted.stderr());
      summary.push(
        `round ${round}: kill after ${load.delayMs} ms (exit ${load.exitMs} ms), acked ${ledger.acked.size - ackedBefore}, unknown ${load.unknown}, ` +
          `rows ${present} (total acked ${ledger.acked.size}), log ${log.logId.slice(0, 8)} ${log.frames} frames/${log.transactions} txns${newLog ? ' (new log)' : ''}`,
      );
    }
    console.log(`kill9 seed ${SEED}\n${summary.join('\n')}`);
  }, 120_000);

  it('SIGTERM under load: exits 0 within the shutdown timeout, restarts clean, the log keeps its log_id', async ({ onTestFailed }) => {
    const seed = SEED ^ 0x5eed;
    context.length = 0;
    onTestFailed(() => console.error(`sigterm seed ${seed} (KILL9_SEED=${SEED})\n${context.join('\n')}`));
    const rand = prng(seed);
    const dbPath = path.join(scratch, 'term.sqld');
    const nsDir = path.join(dbPath, 'dbs', 'default');
    const ledger: Ledger = { sent: new Map(), sizes: new Map(), acked: new Map() };
    const args = ['--shutdown-timeout', String(SHUTDOWN_TIMEOUT_S)];
    const first = await startChildServer(dbPath, args);
    note('sigterm: first server', first);
    await execOk(first.url, 'CREATE TABLE t(id TEXT PRIMARY KEY, payload BLOB)');
    // 503: requests on kept-alive connections once shutdown began (fastify's return503OnClosing).
    const load = await loadThenSignal(first, 'term', rand, ledger, 'SIGTERM', new Set([503]));
    note('sigterm: first server (exited)', first);
    expect(first.exitInfo(), 'exit after SIGTERM').toEqual({ code: 0, signal: null });
    expect(load.exitMs, 'SIGTERM to exit (ms)').toBeLessThan(SHUTDOWN_TIMEOUT_S * 1000 + 1000);
    expect(load.rejected, 'writes refused while the server was up').toEqual([]);
    expect(fs.existsSync(path.join(nsDir, '.sentinel')), '.sentinel after SIGTERM').toBe(false);
    const before = WallogFile.open(path.join(nsDir, 'wallog'), { readOnly: true });
    const logBefore = { logId: before.logId, next: before.nextFrameNo };
    before.close();

    const second = await startChildServer(dbPath, args);
    note('sigterm: restarted server', second);
    expect(second.stderr(), 'restart after SIGTERM').not.toMatch(UNCLEAN_RE);
    await checkAckedOverHttp(second.url, ledger);
    await execOk(second.url, "INSERT INTO t(id, payload) VALUES ('after-restart', x'00')");
    ledger.sent.set('after-restart', sha1(Buffer.from([0])));
    ledger.sizes.set('after-restart', 1);
    ledger.acked.set('after-restart', sha1(Buffer.from([0])));
    expect(await within(stopChild(second), 20_000, 'second stop'), 'clean stop of the restarted server').toEqual({ code: 0, signal: null });
    note('sigterm: restarted server (stopped)', second);
    const log = checkDatabaseAndLog(nsDir, ledger, scratch);
    expect(log.logId, 'log_id after a clean restart').toBe(logBefore.logId);
    expect(log.startFrameNo + log.frames, 'the log continued past its end before the restart').toBeGreaterThan(logBefore.next);
    console.log(`sigterm seed ${seed}: signal after ${load.delayMs} ms, exit ${load.exitMs} ms, acked ${ledger.acked.size - 1}, unknown ${load.unknown}, log ${log.logId.slice(0, 8)} ${logBefore.next} -> ${log.frames} frames`);
  }, 60_000);
});

