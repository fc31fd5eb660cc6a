/**
 * Admin routes that read (spec §9): a namespace's stats and the reset of its top/slowest lists,
 * `GET /v1/diagnostics`, and our extension `GET /v1/namespaces` (docs/ADMIN.md).
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { NotFoundError } from '../../errors.js';
import { maxDbBytes } from './config-json.js';
import { namespaceParam } from './namespace-routes.js';
import type { NamespaceStatsSource, NamespaceStatus } from './stats-source.js';

export interface StatsRoutesContext {
  stats: NamespaceStatsSource;
  /** One string per live Hrana-over-HTTP stream. */
  diagnostics(): string[];
}

/** sqld's stats document; what we do not count reads 0 (or null, for the per-query collection). */
export function statsJson(s: NamespaceStatus): Record<string, unknown> {
  return {
    id: null,
    rows_read_count: s.stats.rowsRead,
    rows_written_count: s.stats.rowsWritten,
    storage_bytes_used: s.storageBytes,
    write_requests_delegated: 0,
    replication_index: Number(s.replicationIndex ?? 0n),
    top_queries: s.stats.topQueries.map((q) => ({ rows_written: q.rowsWritten, rows_read: q.rowsRead, query: q.query })),
    slowest_queries: s.stats.slowestQueries.map((q) => ({ elapsed_ms: Math.round(q.elapsedMs), query: q.query, rows_written: q.rowsWritten, rows_read: q.rowsRead })),
    embedded_replica_frames_replicated: 0,
    query_count: s.stats.queryCount,
    elapsed_ms: s.stats.elapsedMs,
    queries: null,
  };
}

/** One entry of `GET /v1/namespaces` (ours: sqld has no listing). */
function listEntry(s: NamespaceStatus): Record<string, unknown> {
  return {
    name: s.name,
    open: s.open,
    storage_bytes_used: s.storageBytes,
    max_db_size_bytes: maxDbBytes(s.config),
    rows_read_count: s.stats.rowsRead,
    rows_written_count: s.stats.rowsWritten,
    query_count: s.stats.queryCount,
    replication_index: s.replicationIndex === null ? null : Number(s.replicationIndex),
    block_reads: s.config.blockReads,
    block_writes: s.config.blockWrites,
    block_reason: s.config.blockReason,
    config_version: s.config.version,
    backup_lag_frames: s.backupLagFrames,
    replica_lag_frames: s.replicaLagFrames,
  };
}

function sendJson(reply: FastifyReply, body: unknown): FastifyReply {
  return reply.code(200).header('content-type', 'application/json').send(JSON.stringify(body));
}

export function statsRoutes(app: FastifyInstance, ctx: StatsRoutesContext): void {
  const { stats } = ctx;
  const existing = (name: string): string => {
    if (!stats.exists(name)) throw new NotFoundError('NAMESPACE_DOESNT_EXIST', `Namespace \`${name}\` doesn't exist`);
    return name;
  };

  app.get('/v1/namespaces/:ns/stats', async (req, reply) => sendJson(reply, statsJson(stats.status(existing(namespaceParam(req))))));

  app.delete('/v1/namespaces/:ns/stats/:type', async (req, reply) => {
    const type = (req.params as { type: string }).type;
    if (type !== 'top' && type !== 'slowest') throw new Error('Invalid stats type');
    const name = existing(namespaceParam(req));
    if (type === 'top') stats.resetTopQueries(name);
    else stats.resetSlowestQueries(name);
    return reply.code(200).send();
  });

  app.get('/v1/diagnostics', async (_req, reply) => sendJson(reply, ctx.diagnostics()));

  app.get('/v1/namespaces', async (_req, reply) => sendJson(reply, stats.names().map((name) => listEntry(stats.status(name)))));
}
