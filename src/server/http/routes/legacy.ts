import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import type { ClientConnection } from '../../../engine/client-connection.js';
import { splitStatements, type StmtKind } from '../../../engine/sql-split.js';
import { SqlError } from '../../../engine/sql-error.js';
import { NO_ARGS, type ExecResult, type SqlArgs, type SqlValue } from '../../../engine/values.js';
import type { ServerContext } from '../../context.js';
import { authenticateFirst, sessionOf } from '../early-auth.js';
import { httpErrorAnswer } from '../error-map.js';
import { BodyShapeError, decodeLegacyBody, type LegacyQuery } from './legacy-body.js';
import { formatReal, JsonSyntaxError, parseJsonExact } from './legacy-json.js';

/** Body limit of `POST /` (axum's default JSON limit in sqld). */
export const LEGACY_BODY_LIMIT = 2 * 1024 * 1024;

const TEXT = 'text/plain; charset=utf-8';
const MANY_COMMANDS = 'found more than one command in a single statement string. It is allowed to issue only one command per string.';

/** A request rejected before execution, answered `{"error": message}` with `status`. */
class LegacyReject extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** A result value JSON cannot carry (an infinite real): the step fails with this text. */
class DbValueError extends Error {}

/** The response outgrew `--max-response-size`: sqld aborts the request with 500. */
class ResponseTooLarge extends Error {}

interface Checked {
  sql: string;
  kind: StmtKind;
  args: SqlArgs;
}

function sizeText(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const exp = Math.min(Math.floor(Math.log(bytes) / Math.log(1024)), 6);
  return `${(bytes / 1024 ** exp).toFixed(1)} ${'KMGTPE'[exp - 1] ?? ''}B`;
}

function tooLarge(limit: number): ResponseTooLarge {
  return new ResponseTooLarge(`query response exceeds the maximum size of ${sizeText(limit)}. Try reducing the number of queried rows.`);
}

/** sqld's transaction-state prediction: would these statements leave a transaction open? */
function leavesTransactionOpen(kinds: StmtKind[]): boolean {
  let state: 'init' | 'txn' | 'invalid' = 'init';
  for (const kind of kinds) {
    if (state === 'invalid') break;
    if (kind === 'begin') state = state === 'init' ? 'txn' : 'invalid';
    else if (kind === 'commit' || kind === 'rollback') state = state === 'txn' ? 'init' : 'invalid';
    else if (['savepoint', 'release', 'rollback_to', 'attach', 'detach'].includes(kind)) state = 'invalid';
  }
  return state === 'txn';
}

/** A syntax error in the first statement of a query is a 500 in sqld (its parser error is "internal"). */
function checkSyntax(conn: ClientConnection, sql: string): void {
  try {
    conn.describe(sql);
  } catch (err) {
    if (err instanceof SqlError && err.code === 'SQL_PARSE_ERROR') {
      const cause = err.cause instanceof Error ? err.cause.message : err.message;
      throw new LegacyReject(500, `Internal Error: \`${cause}\``);
    }
    // other failures (e.g. a table an earlier query creates) surface when the statement runs
  }
}

/** Pre-execution validation (spec §4.2), in sqld's order. */
function checkQueries(conn: ClientConnection, queries: LegacyQuery[]): Checked[] {
  const checked = queries.map((query): Checked => {
    const stmts = splitStatements(query.q);
    const first = stmts[0];
    if (first !== undefined) checkSyntax(conn, first.sql);
    if (stmts.length > 1) throw new LegacyReject(400, `Failed to parse query: \`${MANY_COMMANDS}\``);
    return { sql: first?.sql ?? '', kind: first?.kind ?? 'select', args: query.args };
  });
  if (checked.some((c) => c.kind === 'release' || c.kind === 'rollback_to')) {
    throw new LegacyReject(400, 'Query error: `savepoints are not supported in HTTP API, use hrana protocol instead`');
  }
  if (leavesTransactionOpen(checked.map((c) => c.kind))) {
    throw new LegacyReject(400, 'Query error: `interactive transaction not allowed in HTTP queries`');
  }
  return checked;
}

function rustFloat(x: number): string {
  return Number.isNaN(x) ? 'NaN' : x > 0 ? 'inf' : '-inf';
}

/** One output value as JSON text (integers exact, reals as sqld spells them, blobs unpadded base64). */
function valueJson(v: SqlValue): string {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'bigint':
      return v.toString();
    case 'number':
      if (!Number.isFinite(v)) {
        throw new DbValueError(`Database value error: \`Cannot to convert database value \`${rustFloat(v)}\` to a JSON number\``);
      }
      return formatReal(v);
    case 'string':
      return JSON.stringify(v);
    default:
      return `{"base64":${JSON.stringify(Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64').replace(/=+$/, ''))}}`;
  }
}

function resultJson(r: ExecResult): string {
  const columns = JSON.stringify(r.columns.map((c) => c.name));
  const rows = r.rows.map((row) => `[${row.map(valueJson).join(',')}]`).join(',');
  const ms = formatReal(Math.round(r.durationMs * 1000) / 1000);
  return `{"results":{"columns":${columns},"rows":[${rows}],"rows_read":${r.rowsRead},"rows_written":${r.rowsWritten},"query_duration_ms":${ms}}}`;
}

const EMPTY_RESULT: ExecResult = { columns: [], rows: [], changes: 0, lastInsertRowid: null, rowsRead: 0, rowsWritten: 0, durationMs: 0 };

/** The display text sqld gives a failed step. */
function stepErrorText(err: SqlError | DbValueError): string {
  if (err instanceof DbValueError) return err.message;
  if (err.code.startsWith('SQLITE_')) return err.message.replace(/^SQLite error: /, '');
  if (err.code === 'TRANSACTION_TIMEOUT') return 'Transaction timed-out';
  if (err.code === 'ARGS_INVALID') return `LibSQL failed to bind provided query parameters: \`${err.message}\``;
  return err.message;
}

/**
 * Runs the statements on one connection: each only if the previous one succeeded; after a failure
 * an open transaction is rolled back (sqld's hidden conditional ROLLBACK step, not reported).
 */
async function runQueries(ctx: ServerContext, conn: ClientConnection, checked: Checked[], allowWrite: boolean): Promise<string> {
  const maxBytes = ctx.config.limits.maxResponseBytes;
  const opts = { allowWrite, maxResponseBytes: maxBytes };
  const entries: string[] = [];
  let size = 2;
  let failed = false;
  for (const stmt of checked) {
    let entry = 'null';
    if (!failed) {
      try {
        if (conn.takeTimedOut()) throw new SqlError('TRANSACTION_TIMEOUT', 'Transaction timed out');
        const result = stmt.sql === '' ? EMPTY_RESULT : await conn.execute(stmt.sql, stmt.args, opts);
        entry = resultJson(result);
      } catch (err) {
        if (err instanceof SqlError && err.code === 'RESPONSE_TOO_LARGE') throw tooLarge(maxBytes);
        if (!(err instanceof SqlError) && !(err instanceof DbValueError)) throw err;
        entry = JSON.stringify({ error: stepErrorText(err) });
        failed = true;
      }
    }
    size += entry.length + 1;
    if (size > maxBytes) throw tooLarge(maxBytes);
    entries.push(entry);
  }
  if (failed && !conn.isAutocommit) {
    try {
      await conn.execute('ROLLBACK', NO_ARGS, opts);
    } catch {
      // its result is not reported; closing the connection rolls back anyway
    }
  }
  return `[${entries.join(',')}]`;
}

function sendError(reply: FastifyReply, status: number, error: string): FastifyReply {
  return reply.code(status).type('application/json').send(JSON.stringify({ error }));
}

/** `POST /`: the legacy query API (spec §4.2). */
export function legacyRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const errorHandler = (err: FastifyError, _req: unknown, reply: FastifyReply): void => {
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      void reply.code(413).type(TEXT).send('Failed to buffer the request body: length limit exceeded');
      return;
    }
    const answer = httpErrorAnswer(err);
    void reply.code(answer.status).type(answer.contentType).send(answer.body);
  };

  app.post('/', { bodyLimit: LEGACY_BODY_LIMIT, errorHandler, ...authenticateFirst(ctx) }, async (request, reply) => {
    const session = sessionOf(request);
    const raw = Buffer.isBuffer(request.body) ? request.body.toString('utf8') : '';
    let queries: LegacyQuery[];
    try {
      queries = decodeLegacyBody(parseJsonExact(raw));
    } catch (err) {
      if (err instanceof JsonSyntaxError) return reply.code(400).type(TEXT).send(`Failed to parse the request body as JSON: ${err.message}`);
      if (err instanceof BodyShapeError) return reply.code(422).type(TEXT).send(`Failed to deserialize the JSON body into the target type: ${err.message}`);
      throw err;
    }

    const release = await ctx.slots.acquire();
    let conn: ClientConnection | undefined;
    let text: string;
    try {
      conn = session.connect();
      text = await runQueries(ctx, conn, checkQueries(conn, queries), session.allowWrite);
    } catch (err) {
      if (err instanceof LegacyReject) return sendError(reply, err.status, err.message);
      if (err instanceof ResponseTooLarge) return sendError(reply, 500, err.message);
      throw err;
    } finally {
      conn?.close();
      release();
    }

    let giveBack: () => void;
    try {
      giveBack = ctx.responses.reserve(text.length);
    } catch {
      return sendError(reply, 500, tooLarge(ctx.config.limits.maxResponseBytes).message);
    }
    reply.raw.once('close', giveBack);
    return reply.code(200).type('application/json').send(text);
  });
}
