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
 * Offers `item` to a list sorted by `weight` (heaviest first) of at most LIST_SIZE statements, one
 * entry per statement text (its heaviest run).
 */
function offer<T extends TopQuery>(list: T[], item: T, weight: (t: T) => number): void {
  const w = weight(item);
  if (list.length >= LIST_SIZE && w <= weight(list[list.length - 1]!)) return;
  const same = list.findIndex((t) => t.query === item.query);
  if (same >= 0) {
    if (weight(list[same]!) >= w) return;
    list.splice(same, 1);
  }
  let i = list.findIndex((t) => weight(t) < w);
  if (i < 0) i = list.length;
  list.splice(i, 0, item);
  if (list.length > LIST_SIZE) list.pop();
}

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
      offer(this.top, { query, rowsRead, rowsWritten }, (t) => t.rowsRead + t.rowsWritten);
    }
    if (!cheapSlow) {
      offer(this.slowest, { query, rowsRead, rowsWritten, elapsedMs }, (t) => t.elapsedMs);
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
