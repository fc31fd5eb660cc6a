import type { FastifyInstance, FastifyReply } from 'fastify';
import { countStatements } from '../../../engine/sql-split.js';
import { SqlError } from '../../../engine/sql-error.js';
import type { ServerContext } from '../../context.js';
import { asStatementError, ProtocolError } from '../../hrana/errors.js';
import { SqlStore } from '../../hrana/sql-store.js';
import { HranaStream, type StreamContext } from '../../hrana/stream.js';
import { decodeArgs } from '../../hrana/values.js';
import type { Stmt } from '../../hrana/protocol.js';
import type { Session } from '../../session.js';
import { isObject, parseJsonBody } from '../body.js';
import { authenticateFirst, sessionOf } from '../early-auth.js';
import { hranaV1Status } from '../error-map.js';
import { sendJson } from '../reply.js';
import { streamContext } from './pipeline.js';

/**
 * Hrana over HTTP version 1 (spec §4.3): `POST /v1/execute` and `POST /v1/batch`, each on a fresh
 * stream that lives for the request only. Structs may also arrive as JSON arrays of their fields in
 * declaration order (serde's derived decoding), so they are normalized to objects first.
 */

const DESERIALIZE = 'Cannot deserialize client message from JSON';
const STMT_FIELDS = ['sql', 'sql_id', 'args', 'named_args', 'want_rows', 'replication_index'];
const NAMED_ARG_FIELDS = ['name', 'value'];
const BATCH_FIELDS = ['steps', 'replication_index'];
const STEP_FIELDS = ['condition', 'stmt'];

/** A struct given as an array of its fields becomes an object; missing trailing fields stay absent. */
function structOf(v: unknown, fields: string[]): unknown {
  if (!Array.isArray(v)) return v;
  if (v.length > fields.length) throw new ProtocolError(`${DESERIALIZE}: invalid length ${v.length}, expected fewer elements in array`);
  const out: Record<string, unknown> = {};
  for (const [i, field] of fields.entries()) {
    if (i < v.length) out[field] = v[i];
  }
  return out;
}

function normalizeStmt(v: unknown): unknown {
  const stmt = structOf(v, STMT_FIELDS);
  if (!isObject(stmt) || !Array.isArray(stmt.named_args)) return stmt;
  return { ...stmt, named_args: stmt.named_args.map((a: unknown) => structOf(a, NAMED_ARG_FIELDS)) };
}

function normalizeBatch(v: unknown): unknown {
  const batch = structOf(v, BATCH_FIELDS);
  if (!isObject(batch) || !Array.isArray(batch.steps)) return batch;
  const steps = batch.steps.map((s: unknown) => {
    const step = structOf(s, STEP_FIELDS);
    return isObject(step) ? { ...step, stmt: normalizeStmt(step.stmt) } : step;
  });
  return { ...batch, steps };
}

/** The one field of a request body (`{"stmt": ...}` or `[stmt]`). */
function bodyField(body: unknown, field: string): unknown {
  let value: unknown;
  if (Array.isArray(body)) {
    if (body.length > 1) throw new ProtocolError(`${DESERIALIZE}: invalid length ${body.length}, expected fewer elements in array`);
    value = body[0];
  } else if (isObject(body)) {
    value = body[field];
  } else {
    throw new ProtocolError(`${DESERIALIZE}: invalid type, expected struct ReqBody`);
  }
  if (value === undefined) throw new ProtocolError(`${DESERIALIZE}: missing field \`${field}\``);
  return value;
}

/**
 * sqld converts every step of a batch before running any, so a step's SQL, argument or version
 * error fails the whole request instead of landing in `step_errors`.
 */
function checkBatchSteps(stream: HranaStream, batch: unknown): void {
  if (!isObject(batch) || !Array.isArray(batch.steps)) return; // the stream reports the shape error
  for (const step of batch.steps) {
    if (!isObject(step) || !isObject(step.stmt)) continue;
    const stmt = step.stmt as Stmt;
    if (stmt.sql_id !== undefined && stmt.sql_id !== null) throw new ProtocolError('sql_id is only supported in protocol version hrana2 and higher');
    const sql = stream.store.resolve(stmt);
    const count = countStatements(sql);
    if (count === 0) throw new SqlError('SQL_NO_STATEMENT', 'SQL string does not contain any statement');
    if (count > 1) throw new SqlError('SQL_MANY_STATEMENTS', 'SQL string contains more than one statement');
    decodeArgs(stmt);
    try {
      stream.describe({ sql });
    } catch (err) {
      if (err instanceof SqlError && err.code === 'SQL_PARSE_ERROR') throw err;
      // anything else (e.g. a table an earlier step creates) is reported when the step runs
    }
  }
}

/** Statement-level errors as a Hrana `Error` body with the v1 status; everything else propagates. */
function sendStatementError(reply: FastifyReply, err: unknown): FastifyReply {
  const body = asStatementError(err);
  if (body === null || (err instanceof SqlError && err.code === 'RESPONSE_TOO_LARGE')) throw err;
  return reply.code(hranaV1Status(body.code)).type('application/json').send(JSON.stringify(body));
}

/** Runs `run` on a fresh stream of the session's database; the stream is closed whatever happens. */
async function withStream(ctx: ServerContext, session: Session, reply: FastifyReply, run: (stream: HranaStream, sctx: StreamContext) => Promise<unknown>): Promise<FastifyReply> {
  const release = await ctx.slots.acquire();
  let stream: HranaStream | undefined;
  let result: unknown;
  try {
    stream = new HranaStream(session.connect(), new SqlStore({ maxCount: 50, maxBytes: 5000 }));
    result = await run(stream, streamContext(ctx, session, 1));
  } catch (err) {
    return sendStatementError(reply, err);
  } finally {
    stream?.close();
    release();
  }
  return sendJson(ctx, reply, { result });
}

/** `POST /v1/execute` → `{"result": StmtResult}`; `POST /v1/batch` → `{"result": BatchResult}`. */
export function hranaV1Routes(app: FastifyInstance, ctx: ServerContext): void {
  app.post('/v1/execute', authenticateFirst(ctx), async (request, reply) => {
    const session = sessionOf(request);
    const stmt = normalizeStmt(bodyField(parseJsonBody(request.body), 'stmt'));
    return withStream(ctx, session, reply, (stream, sctx) => stream.execute(stmt, sctx));
  });

  app.post('/v1/batch', authenticateFirst(ctx), async (request, reply) => {
    const session = sessionOf(request);
    const batch = normalizeBatch(bodyField(parseJsonBody(request.body), 'batch'));
    return withStream(ctx, session, reply, (stream, sctx) => {
      checkBatchSteps(stream, batch);
      return stream.batch(batch, sctx);
    });
  });
}
