import { NotFoundError } from '../../errors.js';
import type { NamespaceDb } from '../../engine/namespace-db.js';
import type { CallerAuth } from '../session.js';
import type { ServerContext } from '../context.js';
import { HranaError, ProtocolError } from '../hrana/errors.js';
import type { CursorEntry, HranaVersion } from '../hrana/protocol.js';
import { SqlStore } from '../hrana/sql-store.js';
import { HranaStream, type StreamContext } from '../hrana/stream.js';
import type { WsResponse } from '../hrana/protobuf/shapes.js';
import type { WsLimits } from './ws-limits.js';
import type { WsRequest } from './ws-messages.js';

type Obj = Record<string, unknown>;
export type { WsResponse } from '../hrana/protobuf/shapes.js';

/** sqld keeps at most 150 SQL texts per WebSocket connection, without a size cap. */
const WS_SQL_STORE = { maxCount: 150, maxBytes: null };

interface OpenCursor {
  readonly entries: AsyncGenerator<CursorEntry>;
  /** The first entry, produced when the cursor was opened (so protocol errors surface there). */
  pending: IteratorResult<CursorEntry> | null;
  done: boolean;
}

/** One Hrana stream of the connection: its jobs run strictly in order on a promise chain. */
interface WsStream {
  readonly id: number;
  stream: HranaStream | null;
  release: (() => void) | null;
  queue: Promise<unknown>;
  /** Jobs queued or running (at most `streamQueue` are admitted). */
  pending: number;
  /** Wakes the intake that waits for this stream to have room. */
  onRoom: (() => void) | null;
  /** Refused by the per-connection stream limit: never opens, holds no slot. */
  refused: boolean;
  /** Id of the cursor opened on this stream (set when the request arrives). */
  cursorId: number | null;
  /** The cursor itself (set when the open_cursor job ran). */
  cursor: OpenCursor | null;
  closed: boolean;
}

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function requireVersion(version: HranaVersion, min: HranaVersion, what: string): void {
  if (version < min) throw new ProtocolError(`${what} is only supported in protocol version hrana${min} and higher`);
}

const noop = (): void => {};

/**
 * The streams, cursors and stored SQL texts of one authenticated WebSocket connection. Requests are
 * dispatched synchronously in arrival order (state changes and protocol checks happen at once);
 * the work itself is queued on the target stream, so different streams run concurrently.
 *
 * Fairness (our policy; sqld has none of it): a stream admits `streamQueue` jobs, the session
 * stops reading the socket until there is room (`roomFor`); every job waits for the connection's
 * send window (`gate`) before it runs; a connection holds at most `maxStreams` open or opening
 * streams, so one client cannot take every `--max-concurrent-connections` slot. One more
 * `open_stream` is answered with TOO_MANY_STREAMS and the id stays known as a stream that failed
 * to open (its requests get STREAM_NOT_OPEN, `close_stream` forgets it), up to `maxStreamIds` ids.
 */
export class WsStreams {
  private readonly streams = new Map<number, WsStream>();
  /** cursor id → stream id */
  private readonly cursors = new Map<number, number>();
  private readonly store = new SqlStore(WS_SQL_STORE);
  private closed = false;

  constructor(
    private readonly ctx: ServerContext,
    private readonly version: HranaVersion,
    private readonly namespace: string,
    private readonly db: NamespaceDb,
    private readonly limits: WsLimits,
    private readonly gate: () => Promise<void> | null,
  ) {}

  /** null when `req` can be queued now; else a promise that settles once its stream has room. */
  roomFor(req: WsRequest): Promise<void> | null {
    const st = this.targetOf(req);
    if (!st || st.pending < this.limits.streamQueue) return null;
    return new Promise((resolve) => (st.onRoom = resolve));
  }

  /**
   * Starts a request. Throws synchronously for errors detected on arrival; the returned promise
   * settles when the request's job on its stream finished.
   */
  dispatch(req: WsRequest, auth: CallerAuth): Promise<WsResponse> {
    const principal = auth.principal;
    const sctx: StreamContext = {
      version: this.version,
      allowWrite: principal.canWrite(this.namespace),
      maxResponseBytes: this.ctx.config.limits.maxResponseBytes,
      logger: this.ctx.logger,
    };
    switch (req.type) {
      case 'open_stream':
        return this.openStream(req.stream_id, auth);
      case 'close_stream':
        return this.closeStream(req.stream_id);
      case 'execute': {
        const stmt = this.freezeStmt(req.stmt);
        return this.run(req.stream_id, async (s) => ({ type: 'execute', result: await s.execute(stmt, sctx) }));
      }
      case 'batch': {
        const batch = this.freezeBatch(req.batch);
        return this.run(req.stream_id, async (s) => ({ type: 'batch', result: await s.batch(batch, sctx) }));
      }
      case 'sequence': {
        requireVersion(this.version, 2, 'The `sequence` request');
        const sql = this.store.resolve(req);
        return this.run(req.stream_id, async (s) => {
          await s.sequence({ sql }, sctx);
          return { type: 'sequence' };
        });
      }
      case 'describe': {
        requireVersion(this.version, 2, 'The `describe` request');
        const sql = this.store.resolve(req);
        return this.run(req.stream_id, (s) => Promise.resolve({ type: 'describe', result: s.describe({ sql }) }));
      }
      case 'store_sql':
        requireVersion(this.version, 2, 'The `store_sql` request');
        this.store.store(req.sql_id, req.sql);
        return Promise.resolve({ type: 'store_sql' });
      case 'close_sql':
        requireVersion(this.version, 2, 'The `close_sql` request');
        this.store.close(req.sql_id);
        return Promise.resolve({ type: 'close_sql' });
      case 'open_cursor':
        requireVersion(this.version, 3, 'The `open_cursor` request');
        return this.openCursor(req.stream_id, req.cursor_id, this.freezeBatch(req.batch), sctx);
      case 'close_cursor':
        requireVersion(this.version, 3, 'The `close_cursor` request');
        return this.closeCursor(req.cursor_id);
      case 'fetch_cursor':
        requireVersion(this.version, 3, 'The `fetch_cursor` request');
        return this.fetchCursor(req.cursor_id, req.max_count);
      case 'get_autocommit':
        requireVersion(this.version, 3, 'The `get_autocommit` request');
        return this.run(req.stream_id, (s) => Promise.resolve({ type: 'get_autocommit', is_autocommit: s.isAutocommit }));
    }
  }

  /** Closes every stream (rolling back open transactions) and gives their slots back. */
  closeAll(): void {
    this.closed = true;
    for (const st of this.streams.values()) {
      this.destroy(st);
      this.wakeIntake(st);
    }
    this.streams.clear();
    this.cursors.clear();
  }

  private openStream(id: number, auth: CallerAuth): Promise<WsResponse> {
    const principal = auth.principal;
    if (this.streams.has(id)) throw new ProtocolError(`Stream ${id} already exists`);
    if (this.streams.size >= this.limits.maxStreamIds) {
      this.ctx.logger.debug({ namespace: this.namespace, stream: id, limit: this.limits.maxStreamIds }, 'WebSocket closed: too many stream ids on the connection');
      throw new ProtocolError(`Too many streams on one connection (${this.streams.size})`);
    }
    const st: WsStream = { id, stream: null, release: null, queue: Promise.resolve(), pending: 0, onRoom: null, refused: false, cursorId: null, cursor: null, closed: false };
    if (this.liveStreams() >= this.limits.maxStreams) {
      st.refused = true;
      st.closed = true;
      this.streams.set(id, st);
      this.ctx.logger.debug({ namespace: this.namespace, stream: id, limit: this.limits.maxStreams }, 'WebSocket open_stream refused: too many streams on the connection');
      return this.enqueue(st, () => Promise.reject(new HranaError('TOO_MANY_STREAMS', `Too many open streams on this connection (at most ${this.limits.maxStreams})`)));
    }
    this.streams.set(id, st);
    return this.enqueue(st, async () => {
      if (!principal.canRead(this.namespace)) {
        throw new NotFoundError('NAMESPACE_DOESNT_EXIST', `Namespace \`${this.namespace}\` doesn't exist`);
      }
      const release = await this.ctx.slots.acquire();
      if (st.closed) {
        release();
        throw new HranaError('STREAM_NOT_OPEN', `Stream ${id} has failed to open`);
      }
      try {
        st.stream = new HranaStream(this.ctx.connect(this.namespace, this.db, auth), this.store);
      } catch (err) {
        release();
        throw err;
      }
      st.release = release;
      return { type: 'open_stream' };
    });
  }

  private closeStream(id: number): Promise<WsResponse> {
    const st = this.getStream(id);
    this.streams.delete(id);
    if (st.cursorId !== null) this.cursors.delete(st.cursorId);
    return this.enqueue(st, () => {
      this.destroy(st);
      return Promise.resolve({ type: 'close_stream' });
    });
  }

  private openCursor(streamId: number, cursorId: number, batch: Obj, sctx: StreamContext): Promise<WsResponse> {
    const st = this.getStream(streamId);
    if (st.cursorId !== null) throw new ProtocolError(`Stream ${streamId} already has an open cursor`);
    if (this.cursors.has(cursorId)) throw new ProtocolError(`Cursor ${cursorId} already exists`);
    this.cursors.set(cursorId, streamId);
    st.cursorId = cursorId;
    return this.enqueue(st, async () => {
      // hrana-client-ts, the WebSocket client, rejects sqld's trailing replication_index entry.
      const entries = this.opened(st).cursor(batch, sctx, { trailingReplicationIndex: false });
      const cursor: OpenCursor = { entries, pending: null, done: false };
      st.cursor = cursor;
      cursor.pending = await entries.next();
      return { type: 'open_cursor' };
    });
  }

  private closeCursor(cursorId: number): Promise<WsResponse> {
    const st = this.cursorStream(cursorId);
    this.cursors.delete(cursorId);
    st.cursorId = null;
    return this.enqueue(st, async () => {
      const cursor = st.cursor;
      st.cursor = null;
      if (cursor) await cursor.entries.return(undefined);
      return { type: 'close_cursor' };
    });
  }

  private fetchCursor(cursorId: number, maxCount: number): Promise<WsResponse> {
    const st = this.cursorStream(cursorId);
    const maxBytes = this.ctx.config.limits.maxResponseBytes / 8;
    return this.enqueue(st, async () => {
      const cursor = st.cursor;
      if (!cursor) throw new HranaError('CURSOR_NOT_OPEN', `Cursor ${cursorId} has failed to open`);
      const entries: CursorEntry[] = [];
      let size = 0;
      while (!cursor.done && entries.length < maxCount && size < maxBytes) {
        const next = cursor.pending ?? (await cursor.entries.next());
        cursor.pending = null;
        if (next.done === true) {
          cursor.done = true;
          break;
        }
        entries.push(next.value);
        size += JSON.stringify(next.value).length;
      }
      return { type: 'fetch_cursor', entries, done: cursor.done };
    });
  }

  private getStream(id: number): WsStream {
    const st = this.streams.get(id);
    if (!st) throw new ProtocolError(`Stream ${id} not found`);
    return st;
  }

  private cursorStream(cursorId: number): WsStream {
    const streamId = this.cursors.get(cursorId);
    if (streamId === undefined) throw new ProtocolError(`Cursor ${cursorId} not found`);
    return this.getStream(streamId);
  }

  /** The stream's connection, or STREAM_NOT_OPEN when opening it failed. */
  private opened(st: WsStream): HranaStream {
    if (!st.stream) throw new HranaError('STREAM_NOT_OPEN', `Stream ${st.id} has failed to open`);
    return st.stream;
  }

  private run(id: number, job: (s: HranaStream) => Promise<WsResponse>): Promise<WsResponse> {
    const st = this.getStream(id);
    return this.enqueue(st, () => job(this.opened(st)));
  }

  private enqueue(st: WsStream, job: () => Promise<WsResponse>): Promise<WsResponse> {
    st.pending++;
    // Nothing queued on the stream and the send window open (the usual case): the job starts now,
    // not two turns of the promise queue later. Otherwise it waits for its turn, then for the window.
    const wait = st.pending === 1 && !this.closed ? this.gate() : undefined;
    const result =
      wait === null
        ? startNow(job)
        : st.queue.then(async () => {
            await (wait ?? this.gate());
            if (this.closed) throw new HranaError('STREAM_NOT_OPEN', `Stream ${st.id} has been closed`);
            return job();
          });
    const settled = (): void => {
      st.pending--;
      if (st.pending < this.limits.streamQueue) this.wakeIntake(st);
    };
    st.queue = result.then(settled, settled);
    return result;
  }

  private wakeIntake(st: WsStream): void {
    const wake = st.onRoom;
    st.onRoom = null;
    wake?.();
  }

  /** The stream a request is queued on (undefined: none, or unknown and about to fail). */
  private targetOf(req: WsRequest): WsStream | undefined {
    if (req.type === 'open_stream') return undefined;
    if ('stream_id' in req) return this.streams.get(req.stream_id);
    if ('cursor_id' in req) {
      const streamId = this.cursors.get(req.cursor_id);
      return streamId === undefined ? undefined : this.streams.get(streamId);
    }
    return undefined;
  }

  private liveStreams(): number {
    let n = 0;
    for (const st of this.streams.values()) if (!st.refused) n++;
    return n;
  }

  private destroy(st: WsStream): void {
    if (st.closed) return;
    st.closed = true;
    const cursor = st.cursor;
    st.cursor = null;
    if (cursor) cursor.entries.return(undefined).catch(noop);
    try {
      st.stream?.close();
    } finally {
      st.release?.();
      st.release = null;
    }
  }

  /**
   * Resolves `sql_id` when the request arrives (as sqld does), so a later `close_sql` cannot pull
   * the text from under a request still waiting in its stream's queue.
   */
  private freezeStmt(stmt: unknown): unknown {
    if (!isObject(stmt) || stmt.sql_id === undefined || stmt.sql_id === null) return stmt;
    requireVersion(this.version, 2, 'The `sql_id` field');
    const sql = this.store.resolve(stmt);
    const { sql_id: _sqlId, ...rest } = stmt;
    return { ...rest, sql };
  }

  private freezeBatch(batch: Obj): Obj {
    if (!Array.isArray(batch.steps)) return batch;
    const steps: unknown[] = batch.steps;
    return { ...batch, steps: steps.map((step) => (isObject(step) ? { ...step, stmt: this.freezeStmt(step.stmt) } : step)) };
  }
}

/** Runs a job at once; a synchronous throw becomes its rejection, as inside the queue. */
function startNow(job: () => Promise<WsResponse>): Promise<WsResponse> {
  try {
    return job();
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}
