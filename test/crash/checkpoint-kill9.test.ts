import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it, vi } from 'vitest';
import { readCaptureState, type CaptureState } from '../../src/engine/log/capture-state.js';
import { replayIntoFile } from '../../src/engine/wal/replay.js';
import { WallogFile } from '../../src/engine/wal/wallog-file.js';
import { startChildServer, stopChild, within } from '../helpers/child-server.js';
import { crashScratch } from '../helpers/crash-scratch.js';
import { dumpDb } from '../helpers/engine-log.js';
import { type Json, isObj, pipeline } from '../helpers/pipeline.js';

/**
 * kill -9 right after a checkpoint (docs/REPLICATION_LOG.md "kill -9 right after a checkpoint"): the
 * server runs as a child process with `--checkpoint-interval-s 1` under concurrent writes; the test
 * watches `wallog-capture` from outside and SIGKILLs the server the moment a checkpoint boundary is
 * recorded. After each kill the restart must be a clean recovery of the same log: every acknowledged
 * row present, the database intact, the whole `wallog` replaying to it, the `log_id` unchanged.
 */

const ROUNDS = 3;
const WRITERS = 4;
const MAX_PAYLOAD = 6 * 1024;
/** Rows per SELECT when reading t back: 500 × at most 12 KiB of hex stays under the 10 MB response cap. */
const PAGE_ROWS = 500;
const REQUEST_TIMEOUT_MS = 10_000;
const CHECKPOINT_WAIT_MS = 6000;
const ARGS = ['--checkpoint-interval-s', '1'];
const UNCLEAN_RE = /did not shut down cleanly/;
const NEW_LOG_RE = /starting a new (replication )?log|cannot continue the replication log/;

const sha1 = (b: Uint8Array): string => createHash('sha1').update(b).digest('hex');


/** The result of the execute request at index 0, when it succeeded. */
function okResult(body: unknown): Json | null {
  if (!isObj(body) || !Array.isArray(body.results)) return null;
  const r: unknown = body.results[0];
  if (!isObj(r) || r.type !== 'ok' || !isObj(r.response) || r.response.type !== 'execute') return null;
  return isObj(r.response.result) ? r.response.result : null;
}

async function execOk(url: string, sql: string): Promise<unknown[][]> {
  const r = await pipeline(url, [{ type: 'execute', stmt: { sql } }]);
  const result = okResult(r.body);
  if (r.status !== 200 || result === null || !Array.isArray(result.rows)) throw new Error(`${sql}: HTTP ${r.status} ${r.raw.slice(0, 500)}`);
  return result.rows.filter(Array.isArray);
}

/** Every id sent with the hash of its payload, and the acknowledged ones. */
interface Ledger {
  sent: Map<string, string>;
  acked: Map<string, string>;
}

interface Load {
  stopped: boolean;
  rejected: string[];
  onAck: () => void;
}

/** Inserts rows until the server goes away (the first connection error ends this writer). */
async function writer(url: string, tag: string, ledger: Ledger, load: Load): Promise<void> {
  for (let seq = 0; !load.stopped; seq++) {
    const id = `${tag}-${seq}`;
    const payload = randomBytes(Math.floor(Math.random() * (MAX_PAYLOAD + 1)));
    ledger.sent.set(id, sha1(payload));
    const stmt = {
      sql: 'INSERT INTO t(id, payload) VALUES (?, ?)',
      args: [
        { type: 'text', value: id },
        { type: 'blob', base64: payload.toString('base64').replace(/=+$/, '') },
      ],
    };
    let answer: Awaited<ReturnType<typeof pipeline>>;
    try {
      answer = await pipeline(url, [{ type: 'execute', stmt }]);
    } catch {
      return; // killed: this write's outcome is unknown
    }
    if (answer.status === 200 && okResult(answer.body)?.affected_row_count === 1) {
      ledger.acked.set(id, sha1(payload));
      load.onAck();
      continue;
    }
    load.rejected.push(`${id}: HTTP ${answer.status} ${answer.raw.slice(0, 300)}`);
    return;
  }
}

/** The checkpoint boundary recorded in `wallog-capture`, or null while none is. */
function boundary(nsDir: string): string | null {
  const state: CaptureState | null = readCaptureState(path.join(nsDir, 'wallog-capture'));
  if (!state || state.checkpointedFrames === null) return null;
  return `${state.logId}/gen ${state.walGeneration}/frames ${state.checkpointedFrames}`;
}

/** The rows of t over HTTP (id → sha1 of the payload); checks every acknowledged one is there. */
async function checkAckedOverHttp(url: string, ledger: Ledger): Promise<Map<string, string>> {
  // Paged by rowid: the whole table can outgrow one response (`--max-response-size`, 10 MB).
  const rows: unknown[][] = [];
  for (let after = 0; ; ) {
    const page = await execOk(url, `SELECT rowid, id, hex(payload) FROM t WHERE rowid > ${after} ORDER BY rowid LIMIT ${PAGE_ROWS}`);
    for (const [, id, hex] of page) rows.push([id, hex]);
    const last: unknown = page.at(-1)?.[0];
    if (page.length < PAGE_ROWS || !isObj(last) || typeof last.value !== 'string') break;
    after = Number(last.value);
  }
  const present = new Map<string, string>();
  for (const [id, hex] of rows) {
    if (isObj(id) && typeof id.value === 'string' && isObj(hex) && typeof hex.value === 'string') present.set(id.value, sha1(Buffer.from(hex.value, 'hex')));
  }
  expect(present.size, 'rows parsed from the HTTP answer').toBe(rows.length);
  const lost = [...ledger.acked].filter(([id, h]) => present.get(id) !== h).map(([id]) => id);
  expect(lost, 'acknowledged rows missing (or changed) after the restart').toEqual([]);
  const foreign = [...present].filter(([id, h]) => ledger.sent.get(id) !== h).map(([id]) => id);
  expect(foreign, 'rows never written with that content').toEqual([]);
  return present;
}

/** Replays the whole wallog (read-only: the server may run, idle) into a new file; checks it is intact. */
function replayWallog(nsDir: string, scratch: string): { logId: string; frames: bigint; file: string } {
  const log = WallogFile.open(path.join(nsDir, 'wallog'), { readOnly: true });
  const file = path.join(fs.mkdtempSync(path.join(scratch, 'replay-')), 'db');
  try {
    expect(log.startFrameNo, 'the log was compacted; a replay of wallog alone is not the database').toBe(0n);
    const result = replayIntoFile(file, log.iterateFrames());
    expect(result.framesSkipped, 'uncommitted frames at the end of the log').toBe(0);
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      expect(db.pragma('integrity_check', { simple: true }), 'integrity_check of the replayed log').toBe('ok');
    } finally {
      db.close();
    }
    return { logId: log.logId, frames: log.frameCount, file };
  } finally {
    log.close();
  }
}

function rowsOf(file: string): Map<string, string> {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return new Map(db.prepare<[], { id: string; payload: Buffer }>('SELECT id, payload FROM t').all().map((r) => [r.id, sha1(r.payload)]));
  } finally {
    db.close();
  }
}

/** With the server stopped: the database is intact and equals the replay of its whole wallog (schema and rows). */
function checkOffline(nsDir: string, ledger: Ledger, scratch: string): string {
  const dbFile = path.join(nsDir, 'data');
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  let dump: string;
  try {
    expect(db.pragma('integrity_check', { simple: true }), 'integrity_check of the database').toBe('ok');
    const present = new Map(db.prepare<[], { id: string; payload: Buffer }>('SELECT id, payload FROM t').all().map((r) => [r.id, sha1(r.payload)]));
    expect([...ledger.acked].filter(([id, h]) => present.get(id) !== h).map(([id]) => id), 'acknowledged rows missing from the database').toEqual([]);
    dump = dumpDb(db);
  } finally {
    db.close();
  }
  const replay = replayWallog(nsDir, scratch);
  const copy = new Database(replay.file, { readonly: true, fileMustExist: true });
  try {
    expect(dumpDb(copy) === dump, 'the replayed log equals the database').toBe(true);
  } finally {
    copy.close();
  }
  return replay.logId;
}

const { dir: scratch, context, note } = crashScratch('libsqlctl-ckpt-kill9-');

describe('kill -9 right after a checkpoint (child process)', () => {
  it(`${ROUNDS} rounds: acknowledged rows kept, database intact, the log replays to it, the same log_id`, async ({ onTestFailed }) => {
    context.length = 0;
    onTestFailed(() => console.error(context.join('\n')));
    const dbPath = path.join(scratch, 'ckpt.sqld');
    const nsDir = path.join(dbPath, 'dbs', 'default');
    const ledger: Ledger = { sent: new Map(), acked: new Map() };
    let server = await startChildServer(dbPath, ARGS);
    note('first server', server);
    await execOk(server.url, 'CREATE TABLE t(id TEXT PRIMARY KEY, payload BLOB)');
    let logId: string | null = null;
    const summary: string[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      context.push(`=== round ${round}`);
      const ackedBefore = ledger.acked.size;
      let firstAck = (): void => {};
      const acked = new Promise<void>((resolve) => (firstAck = resolve));
      const load: Load = { stopped: false, rejected: [], onAck: () => firstAck() };
      const url = server.url;
      const writers = Array.from({ length: WRITERS }, (_, w) => writer(url, `r${round}-w${w}`, ledger, load));
      let killedAt: string;
      try {
        await within(acked, REQUEST_TIMEOUT_MS, `the first acknowledged write of round ${round}`);
        // A boundary recorded after this round's writes began is a checkpoint of this server.
        const before = boundary(nsDir);
        await vi.waitFor(
          () => {
            const now = boundary(nsDir);
            if (now === null || now === before) throw new Error(`no new checkpoint boundary in wallog-capture (still ${before})`);
          },
          { timeout: CHECKPOINT_WAIT_MS, interval: 2 },
        );
        expect(server.signal('SIGKILL'), `round ${round}: server alive at the checkpoint`).toBe(true);
        killedAt = boundary(nsDir) ?? 'none';
        await within(server.exited, REQUEST_TIMEOUT_MS, 'exit after SIGKILL');
        await within(Promise.all(writers), REQUEST_TIMEOUT_MS + 1000, 'writers to stop');
      } finally {
        load.stopped = true;
      }
      note(`round ${round}: killed server`, server);
      expect(server.exitInfo()?.signal).toBe('SIGKILL');
      expect(load.rejected, `round ${round}: writes refused while the server was up`).toEqual([]);
      expect(ledger.acked.size - ackedBefore, `round ${round}: acknowledged writes`).toBeGreaterThan(0);

      server = await startChildServer(dbPath, ARGS);
      note(`round ${round}: restarted server`, server);
      expect(server.stderr(), `round ${round}: recovery after SIGKILL`).toMatch(UNCLEAN_RE);
      const newLog = NEW_LOG_RE.exec(server.stderr());
      expect(newLog?.[0] ?? null, `round ${round}: the restart after a kill at ${killedAt} started a new log`).toBeNull();
      const present = await checkAckedOverHttp(server.url, ledger);
      expect(await execOk(server.url, 'PRAGMA integrity_check'), `round ${round}: integrity_check`).toEqual([[{ type: 'text', value: 'ok' }]]);
      // Nothing writes now: the log on disk is the recovered one, and it replays to what the server serves.
      const replay = replayWallog(nsDir, scratch);
      expect(rowsOf(replay.file), `round ${round}: the replayed log's rows vs the server's`).toEqual(present);
      logId ??= replay.logId;
      expect(replay.logId, `round ${round}: log_id after recovery`).toBe(logId);
      summary.push(`round ${round}: killed at ${killedAt}, acked ${ledger.acked.size - ackedBefore}, rows ${present.size}, log ${replay.logId.slice(0, 8)} ${replay.frames} frames`);
    }
    const stop = await stopChild(server);
    note('last server (stopped)', server);
    expect(stop, 'clean stop after the last recovery').toEqual({ code: 0, signal: null });
    expect(checkOffline(nsDir, ledger, scratch), 'log_id after the clean stop').toBe(logId);
    console.log(`checkpoint kill -9\n${summary.join('\n')}`);
  }, 120_000);
});
