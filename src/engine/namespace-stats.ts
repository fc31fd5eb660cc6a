/**
 * What a namespace counts about its client statements, cheaply, on every statement: rows read and
 * written (`rows_read` = rows returned, as everywhere in the engine), statements run, their time,
 * and the ten heaviest and ten slowest statements (sqld's `top_queries` / `slowest_queries`).
 * Kept in memory: counters start from zero when the server starts (sqld keeps a stats.json).
 */

/** How many statements each list keeps. */
const LIST_SIZE = 10;
/** Statement texts are kept up to this many characters. */
const MAX_QUERY_CHARS = 1000;

export interface TopQuery {
  readonly query: string;
  readonly rowsRead: number;
  readonly rowsWritten: number;
}

export interface SlowQuery extends TopQuery {
  readonly elapsedMs: number;
}

export interface NamespaceStatsSnapshot {
  readonly rowsRead: number;
  readonly rowsWritten: number;
  readonly queryCount: number;
  readonly elapsedMs: number;
  readonly topQueries: readonly TopQuery[];
  readonly slowestQueries: readonly SlowQuery[];
}

/**
 * Where a statement of weight `w` goes in a list sorted by `weight` (heaviest first) of at most
 * LIST_SIZE statements, one entry per statement text (its heaviest run): the index to insert its
 * entry at (a lighter entry of the same text is removed), or -1 when it stays out. Nothing is
 * allocated when it stays out (a statement run again no heavier than before, the usual case).
 */
function place<T extends TopQuery>(list: T[], query: string, w: number, weight: (t: T) => number): number {
  if (list.length >= LIST_SIZE && w <= weight(list[list.length - 1]!)) return -1;
  for (let k = 0; k < list.length; k++) {
    if (list[k]!.query !== query) continue;
    if (weight(list[k]!) >= w) return -1;
    list.splice(k, 1);
    break;
  }
  const i = list.findIndex((t) => weight(t) < w);
  return i < 0 ? list.length : i;
}

function insert<T>(list: T[], at: number, item: T): void {
  list.splice(at, 0, item);
  if (list.length > LIST_SIZE) list.pop();
}

const rowsWeight = (t: TopQuery): number => t.rowsRead + t.rowsWritten;
const timeWeight = (t: SlowQuery): number => t.elapsedMs;

export class NamespaceStats {
  private rowsRead = 0;
  private rowsWritten = 0;
  private queryCount = 0;
  private elapsedMs = 0;
  private top: TopQuery[] = [];
  private slowest: SlowQuery[] = [];

  /** One client statement that ran to its end. */
  record(sql: string, rowsRead: number, rowsWritten: number, elapsedMs: number): void {
    this.rowsRead += rowsRead;
    this.rowsWritten += rowsWritten;
    this.queryCount += 1;
    this.elapsedMs += elapsedMs;
    const rows = rowsRead + rowsWritten;
    const cheapTop = rows === 0 || (this.top.length >= LIST_SIZE && rows <= this.top[this.top.length - 1]!.rowsRead + this.top[this.top.length - 1]!.rowsWritten);
    const cheapSlow = this.slowest.length >= LIST_SIZE && elapsedMs <= this.slowest[this.slowest.length - 1]!.elapsedMs;
    if (cheapTop && cheapSlow) return;
    const query = sql.length > MAX_QUERY_CHARS ? sql.slice(0, MAX_QUERY_CHARS) : sql;
    if (!cheapTop) {
      const at = place(this.top, query, rows, rowsWeight);
      if (at >= 0) insert(this.top, at, { query, rowsRead, rowsWritten });
    }
    if (!cheapSlow) {
      const at = place(this.slowest, query, elapsedMs, timeWeight);
      if (at >= 0) insert(this.slowest, at, { query, rowsRead, rowsWritten, elapsedMs });
    }
  }

  resetTop(): void {
    this.top = [];
  }

  resetSlowest(): void {
    this.slowest = [];
  }

  snapshot(): NamespaceStatsSnapshot {
    return {
      rowsRead: this.rowsRead,
      rowsWritten: this.rowsWritten,
      queryCount: this.queryCount,
      elapsedMs: this.elapsedMs,
      topQueries: [...this.top],
      slowestQueries: [...this.slowest],
    };
  }
}

export const EMPTY_STATS: NamespaceStatsSnapshot = Object.freeze({ rowsRead: 0, rowsWritten: 0, queryCount: 0, elapsedMs: 0, topQueries: [], slowestQueries: [] });
