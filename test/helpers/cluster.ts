/**
 * A primary and its replicas as child processes (`libsqlctl serve`, compiled bin/run.js; see
 * child-server.ts): start them on loopback ports, read their URLs from the welcome banners,
 * stop / kill / restart them on the same data directory and the same ports, read their pino logs,
 * and compare what a replica holds with the primary.
 *
 * A replica forwards every program to the primary until it has applied what the primary had at its
 * last Hello (docs/REPLICATION.md), so a plain read on a replica can be answered by the primary.
 * `readLocal` proves where a read ran: its batch also reads the journal mode, which is `wal` on a
 * primary and a rollback mode on a replica (the frame applier keeps the file in rollback mode).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createClient, type Client, type InStatement, type Row, type Value } from '@libsql/client';
import { expect } from 'vitest';
import { bannerUrl, killChild, spawnCli, stopChild, within, type CliProcess, type ExitInfo } from './child-server.js';

const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 15_000;
/** Poll interval of the waits that have no event to await (a replica's content, a child's stderr). */
const POLL_MS = 25;
const REPLICA_ROLE_RE = /replica of\s+(\S+)/;
const PRIMARY_GRPC_RE = /replicas\s+(https?:\/\/127\.0\.0\.1:(\d+))/;
/** Batched with a replica read: `wal` means the batch ran on the primary. */
const JOURNAL_MODE_SQL = 'SELECT journal_mode FROM pragma_journal_mode';

/** A port that was free a moment ago (listen on 0, read it, close). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}


/** One parsed pino line of a child's stderr. */
export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export function parseLog(stderr: string): LogLine[] {
  const lines: LogLine[] = [];
  for (const text of stderr.split('\n')) {
    if (!text.startsWith('{')) continue;
    try {
      const obj = JSON.parse(text) as unknown;
      if (typeof obj === 'object' && obj !== null && typeof (obj as LogLine).msg === 'string') lines.push(obj as LogLine);
    } catch {
      // a torn last line (SIGKILL) or not JSON
    }
  }
  return lines;
}

export type NodeKind = 'primary' | 'replica';

export interface StartOptions {
  /** Extra `serve` flags. */
  args?: readonly string[];
  /** Added to the environment; undefined removes a variable. */
  env?: Record<string, string | undefined>;
}

export interface PrimaryOptions extends StartOptions {
  /** The inter-node port (default: a free one); a restart uses the same. */
  grpcPort?: number;
}

export interface ReplicaOptions extends StartOptions {
  /** `http://127.0.0.1:<port>` of the primary's inter-node port (or anything else, for the failure tests). */
  primaryUrl: string;
}

interface Spec {
  kind: NodeKind;
  label: string;
  dbPath: string;
  /** 0 before the first start; the banner's port afterwards. */
  httpPort: number;
  grpcPort: number | null;
  primaryUrl: string | null;
  args: readonly string[];
  env: Record<string, string | undefined>;
}

/**
 * One server of a cluster. `proc` is the current process; `runs` every process started for it (for
 * failure reports). A restart reuses the data directory and both ports.
 */
export class ClusterNode {
  readonly runs: CliProcess[] = [];
  #spec: Spec;
  #proc: CliProcess | null = null;

  private constructor(spec: Spec) {
    this.#spec = spec;
  }

  static async start(spec: Spec): Promise<ClusterNode> {
    const node = new ClusterNode(spec);
    await node.#launch();
    return node;
  }

  get kind(): NodeKind {
    return this.#spec.kind;
  }

  get label(): string {
    return this.#spec.label;
  }

  get dbPath(): string {
    return this.#spec.dbPath;
  }

  /** `http://127.0.0.1:<port>` of the user port. */
  get url(): string {
    return `http://127.0.0.1:${this.#spec.httpPort}`;
  }

  /** The primary's inter-node URL (what replicas get as --primary-grpc-url). */
  get grpcUrl(): string {
    if (this.#spec.grpcPort === null) throw new Error(`${this.label} has no inter-node port`);
    return `http://127.0.0.1:${this.#spec.grpcPort}`;
  }

  get proc(): CliProcess {
    if (this.#proc === null) throw new Error(`${this.label} was never started`);
    return this.#proc;
  }

  /** The current process runs. */
  alive(): boolean {
    return this.#proc !== null && this.#proc.exitInfo() === null;
  }

  /** The current process's stderr, parsed. */
  log(): LogLine[] {
    return parseLog(this.proc.stderr());
  }

  /** Every run's stderr, for failure reports. */
  report(): string {
    return this.runs.map((p, i) => `--- ${this.label} run ${i + 1} (pid ${p.pid}, exit ${JSON.stringify(p.exitInfo())}) stderr:\n${p.stderr()}`).join('\n');
  }

  /** SIGTERM and a bounded wait for the exit. */
  stop(): Promise<ExitInfo> {
    return stopChild(this.proc, STOP_TIMEOUT_MS);
  }

  /** SIGKILL and a wait for the exit. */
  kill(): Promise<ExitInfo> {
    return killChild(this.proc);
  }

  /**
   * Starts the node again on the same data directory and ports (the previous process must be gone).
   * `env` replaces the environment additions of the previous start; `primaryUrl` repoints a replica.
   * `mayExit`: the process may die before it serves (a crash-point test); then this resolves anyway.
   */
  async restart(opts: { env?: Record<string, string | undefined>; primaryUrl?: string; mayExit?: boolean } = {}): Promise<void> {
    if (this.alive()) throw new Error(`${this.label} is still running (pid ${this.proc.pid})`);
    this.#spec = { ...this.#spec, env: opts.env ?? {}, ...(opts.primaryUrl !== undefined ? { primaryUrl: opts.primaryUrl } : {}) };
    await this.#launch(opts.mayExit ?? false);
  }

  /** How many lines of the current process's log match `msg`. */
  countLog(msg: RegExp): number {
    return this.log().filter((l) => msg.test(l.msg)).length;
  }

  /**
   * Resolves with the (`skip` + 1)-th line of the current process's log that matches `msg`; rejects
   * after `timeoutMs` or when the process exits without it. (The child's stderr has no event here: polled.)
   */
  async waitForLog(msg: RegExp, timeoutMs = 15_000, skip = 0): Promise<LogLine> {
    const proc = this.proc;
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const line = parseLog(proc.stderr()).filter((l) => msg.test(l.msg))[skip];
      if (line) return line;
      if (proc.exitInfo() !== null) throw new Error(`${this.label} exited (${JSON.stringify(proc.exitInfo())}) before logging ${msg}\n${this.report()}`);
      if (performance.now() > deadline) throw new Error(`${this.label} did not log ${msg} within ${timeoutMs} ms\n${this.report()}`);
      await pause(POLL_MS);
    }
  }

  async #launch(mayExit = false): Promise<void> {
    const s = this.#spec;
    // A test that timed out goes on running after its file's cleanup killed the servers and removed
    // the scratch folder: it must not start a server nobody stops.
    if (!fs.existsSync(path.dirname(s.dbPath))) throw new Error(`${s.label}: the scratch folder is gone (the test file ended); not starting`);
    const role =
      s.kind === 'primary' ? ['--grpc-listen-addr', `127.0.0.1:${s.grpcPort ?? 0}`] : ['--primary-grpc-url', s.primaryUrl ?? ''];
    const proc = spawnCli(['serve', '--db-path', s.dbPath, '--http-listen-addr', `127.0.0.1:${s.httpPort}`, '--shutdown-timeout', '5', ...role, ...s.args], { env: s.env });
    this.#proc = proc;
    this.runs.push(proc);
    try {
      const url = await bannerUrl(proc, START_TIMEOUT_MS);
      const port = Number(new URL(url).port);
      if (s.httpPort !== 0 && port !== s.httpPort) throw new Error(`${s.label} listens on ${port}, expected ${s.httpPort}`);
      s.httpPort = port;
      if (s.kind === 'primary') {
        const m = PRIMARY_GRPC_RE.exec(proc.stdout());
        if (!m) throw new Error(`${s.label}: no inter-node port in the banner:\n${proc.stdout()}`);
        const grpcPort = Number(m[2]);
        if (s.grpcPort !== null && s.grpcPort !== 0 && grpcPort !== s.grpcPort) throw new Error(`${s.label}: inter-node port ${grpcPort}, expected ${s.grpcPort}`);
        s.grpcPort = grpcPort;
      } else {
        const m = REPLICA_ROLE_RE.exec(proc.stdout());
        if (!m || m[1] !== s.primaryUrl) throw new Error(`${s.label}: the banner does not name the primary ${s.primaryUrl}:\n${proc.stdout()}`);
      }
      const health = await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(START_TIMEOUT_MS) });
      await health.arrayBuffer();
      if (health.status !== 200) throw new Error(`${s.label}: GET /health answered ${health.status}`);
    } catch (err) {
      // A process that dies on its own while starting (its stdout/health check fail first) is what the caller expects.
      if (mayExit && (await within(proc.exited, 5000, 'exit').then(() => true, () => false))) return;
      await killChild(proc).catch(() => undefined);
      throw new Error(`${err instanceof Error ? err.message : String(err)}\n${this.report()}`, { cause: err });
    }
  }
}

/** Starts a primary with an inter-node port (given or free). */
export async function startPrimary(dbPath: string, opts: PrimaryOptions = {}): Promise<ClusterNode> {
  const grpcPort = opts.grpcPort ?? (await freePort());
  return ClusterNode.start({ kind: 'primary', label: `primary ${dbPath}`, dbPath, httpPort: 0, grpcPort, primaryUrl: null, args: opts.args ?? [], env: opts.env ?? {} });
}

/** Starts a replica of `opts.primaryUrl`; resolves once it serves HTTP (not once it reached the primary). */
export async function startReplica(dbPath: string, opts: ReplicaOptions): Promise<ClusterNode> {
  return ClusterNode.start({ kind: 'replica', label: `replica ${dbPath}`, dbPath, httpPort: 0, grpcPort: null, primaryUrl: opts.primaryUrl, args: opts.args ?? [], env: opts.env ?? {} });
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs `fn` with a fresh @libsql/client client of `url` (HTTP; closed afterwards). */
export async function withClient<T>(url: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const client = createClient({ url });
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

/** A value in a comparable, printable form (blobs as length and hash). */
function plain(v: Value): string | number | null {
  if (v === null) return null;
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof ArrayBuffer) return `blob ${v.byteLength} ${createHash('sha1').update(new Uint8Array(v)).digest('hex')}`;
  return v;
}

const plainRows = (rows: Row[]): (string | number | null)[][] => rows.map((r) => Array.from({ length: r.length }, (_, i) => plain(r[i] as Value)));

/** Thrown by readLocal when the batch was answered by the primary (the replica is not caught up). */
export class ForwardedReadError extends Error {}

/**
 * Runs `stmts` on the replica in one read batch together with a journal-mode probe and returns
 * their rows; throws ForwardedReadError when the primary answered instead of the replica's copy.
 */
export async function readLocal(replica: ClusterNode, stmts: InStatement[]): Promise<(string | number | null)[][][]> {
  return withClient(replica.url, async (c) => {
    const [probe, ...results] = await c.batch([JOURNAL_MODE_SQL, ...stmts], 'read');
    const mode = probe?.rows[0]?.[0];
    if (mode === 'wal') throw new ForwardedReadError(`the read on ${replica.label} was answered by the primary (journal_mode wal)`);
    if (typeof mode !== 'string') throw new Error(`journal mode probe on ${replica.label} gave a ${typeof mode}`);
    return results.map((r) => plainRows(r.rows));
  });
}

/** Rows of one query on the primary. */
export async function readPrimary(primary: ClusterNode, stmt: InStatement): Promise<(string | number | null)[][]> {
  return withClient(primary.url, async (c) => plainRows((await c.execute(stmt)).rows));
}

/**
 * Polls (bounded) until `check` of the replica's own rows of `stmt` passes; returns those rows.
 * Reads answered by the primary, and read transactions the applier rolled back, count as "not yet".
 */
export async function waitForReplica(
  replica: ClusterNode,
  stmt: InStatement,
  check: (rows: (string | number | null)[][]) => boolean,
  what: string,
  timeoutMs = 20_000,
): Promise<(string | number | null)[][]> {
  const deadline = performance.now() + timeoutMs;
  let last = 'nothing read yet';
  for (;;) {
    if (!replica.alive()) throw new Error(`${replica.label} exited while waiting for ${what}\n${replica.report()}`);
    try {
      const [rows = []] = await readLocal(replica, [stmt]);
      if (check(rows)) return rows;
      last = `rows ${JSON.stringify(rows).slice(0, 300)}`;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (performance.now() > deadline) throw new Error(`${replica.label}: ${what} not reached within ${timeoutMs} ms (last: ${last})\n${replica.report()}`);
    await pause(POLL_MS * 2);
  }
}

/** Waits until the replica's own copy of `table` has exactly `count` rows. */
export async function waitForCount(replica: ClusterNode, table: string, count: number, timeoutMs = 20_000): Promise<void> {
  await waitForReplica(replica, `SELECT count(*) FROM ${table}`, (rows) => Number(rows[0]?.[0]) === count, `${count} rows in ${table}`, timeoutMs);
}

/** Waits until the replica's copy of `table` has as many rows as the primary's (the primary is not being written). */
export async function waitForPrimaryCount(primary: ClusterNode, replica: ClusterNode, table: string, timeoutMs = 20_000): Promise<number> {
  const [[n] = []] = await readPrimary(primary, `SELECT count(*) FROM ${table}`);
  await waitForCount(replica, table, Number(n), timeoutMs);
  return Number(n);
}

/** `PRAGMA integrity_check` over SQL: on a replica on its own copy. */
export async function integrityCheck(node: ClusterNode): Promise<string[]> {
  const rows = node.kind === 'replica' ? ((await readLocal(node, ['PRAGMA integrity_check']))[0] ?? []) : await readPrimary(node, 'PRAGMA integrity_check');
  return rows.map((r) => String(r[0]));
}

/**
 * Expects `table` to hold the same rows (rowid and every column; blobs by length and hash) on the
 * primary and on the replica's own copy; read in pages of `pageRows` (a response has a size limit).
 * Returns the row count.
 */
export async function expectSameTable(primary: ClusterNode, replica: ClusterNode, table: string, pageRows = 200): Promise<number> {
  const sql = `SELECT rowid AS _rowid_, * FROM ${table} WHERE rowid > ? ORDER BY rowid LIMIT ${pageRows}`;
  let after: number | string = Number.MIN_SAFE_INTEGER;
  let rows = 0;
  for (;;) {
    const [onReplica = []] = await readLocal(replica, [{ sql, args: [after] }]);
    const onPrimary = await readPrimary(primary, { sql, args: [after] });
    expect(onReplica, `rows of ${table} after rowid ${after} on the replica vs the primary`).toEqual(onPrimary);
    rows += onPrimary.length;
    const last = onPrimary.at(-1)?.[0];
    if (onPrimary.length < pageRows || last === undefined || last === null) return rows;
    after = last;
  }
}

/** The schema (names and SQL of every object) on the primary and on the replica's own copy. */
export async function schemaOnBoth(primary: ClusterNode, replica: ClusterNode): Promise<{ primary: (string | number | null)[][]; replica: (string | number | null)[][] }> {
  const sql = "SELECT type, name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name";
  const [onReplica = []] = await readLocal(replica, [sql]);
  return { primary: await readPrimary(primary, sql), replica: onReplica };
}

/**
 * The end state of a test that wrote: once the primary is no longer written, the replica's own copy
 * reaches the primary's row count of `tables[0]`, every table has the same rows on both sides, the
 * schemas are equal and `PRAGMA integrity_check` is ok on both. Returns the row count of `tables[0]`.
 */
export async function expectConverged(primary: ClusterNode, replica: ClusterNode, tables: readonly string[], timeoutMs = 20_000): Promise<number> {
  const [first, ...rest] = tables;
  if (first === undefined) throw new Error('expectConverged needs a table');
  const rows = await waitForPrimaryCount(primary, replica, first, timeoutMs);
  for (const table of [first, ...rest]) await expectSameTable(primary, replica, table);
  const schema = await schemaOnBoth(primary, replica);
  expect(schema.replica, 'schema on the replica vs the primary').toEqual(schema.primary);
  expect(await integrityCheck(primary), `integrity_check on ${primary.label}`).toEqual(['ok']);
  expect(await integrityCheck(replica), `integrity_check on ${replica.label}`).toEqual(['ok']);
  return rows;
}

