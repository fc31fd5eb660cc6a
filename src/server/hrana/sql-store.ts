import { HranaError, ProtocolError } from './errors.js';

/** SQL texts stored with `store_sql`: per HTTP stream (50 × 5000 bytes) or per WebSocket (150). */
export class SqlStore {
  private readonly texts = new Map<number, string>();

  constructor(private readonly limits: { maxCount: number; maxBytes: number | null }) {}

  store(id: unknown, sql: unknown): void {
    if (typeof id !== 'number' || !Number.isInteger(id) || typeof sql !== 'string') {
      throw new ProtocolError('Cannot deserialize client message: store_sql needs an integer sql_id and a sql string');
    }
    if (this.texts.has(id)) throw new ProtocolError(`SQL text ${id} already exists`);
    if (this.texts.size >= this.limits.maxCount) {
      throw new HranaError('SQL_STORE_TOO_MANY', `The server already stores ${this.texts.size} SQL texts, it cannot store more`);
    }
    const size = Buffer.byteLength(sql);
    if (this.limits.maxBytes !== null && size > this.limits.maxBytes) {
      throw new HranaError('SQL_STORE_TOO_LARGE', `The statement is too large to be stored: ${(size / 1000).toFixed(1)}/${(this.limits.maxBytes / 1000).toFixed(1)} KB`);
    }
    this.texts.set(id, sql);
  }

  close(id: unknown): void {
    if (typeof id !== 'number') throw new ProtocolError('Cannot deserialize client message: close_sql needs an integer sql_id');
    this.texts.delete(id);
  }

  /** The SQL of a Stmt-like object: exactly one of `sql` and `sql_id`. */
  resolve(req: { sql?: unknown; sql_id?: unknown }): string {
    const hasSql = req.sql !== undefined && req.sql !== null;
    const hasId = req.sql_id !== undefined && req.sql_id !== null;
    if (hasSql && hasId) throw new ProtocolError('Received both SQL text and SQL id');
    if (hasSql) {
      if (typeof req.sql !== 'string') throw new ProtocolError('Cannot deserialize client message: sql must be a string');
      return req.sql;
    }
    if (!hasId) throw new ProtocolError('Received neither SQL text nor SQL id');
    const text = typeof req.sql_id === 'number' ? this.texts.get(req.sql_id) : undefined;
    if (text === undefined) throw new ProtocolError(`SQL text ${String(req.sql_id)} not found`);
    return text;
  }
}
