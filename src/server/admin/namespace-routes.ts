/**
 * Admin routes that change namespaces (spec §9): create (with a dump), fork (fork.ts), delete (and
 * the pruning of its backups), config GET/POST, checkpoint. Statuses and texts are sqld's; errors go
 * through the one HTTP error map.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { NotFoundError } from '../../errors.js';
import { DumpLoadError, loadDump } from '../../engine/dump-load.js';
import { DEFAULT_NAMESPACE_CONFIG } from '../../engine/namespace-config.js';
import { checkNamespaceName } from '../../engine/namespace-name.js';
import { errorMessage, type Logger } from '../../engine/logger.js';
import { DEFAULT_NAMESPACE, NamespaceExistsError, type Namespaces } from '../../engine/namespaces.js';
import type { BackupAdmin } from '../context.js';
import { field, jsonObjectBody } from './admin-body.js';
import { AdminRequestError, applyConfigRequest, configJson, parseCreateRequest } from './config-json.js';
import { readDump } from './dump-source.js';
import { forkNamespace, forkTime } from './fork.js';

export interface NamespaceRoutesContext {
  namespaces: Namespaces;
  /** A replica takes its namespaces from its primary: it creates none itself. */
  isReplica: boolean;
  /** Point-in-time forks, savepoints and pruning; null without bottomless. */
  backups: BackupAdmin | null;
  logger: Logger;
}

/** The `:ns` path parameter (already percent-decoded: `%2F` arrives as `/` and is refused by the name rules). */
export function namespaceParam(req: FastifyRequest): string {
  return (req.params as { ns: string }).ns;
}

export function requireNamespace(namespaces: Namespaces, name: string): void {
  if (!namespaces.exists(name)) throw new NotFoundError('NAMESPACE_DOESNT_EXIST', `Namespace \`${name}\` doesn't exist`);
}

export function namespaceRoutes(app: FastifyInstance, ctx: NamespaceRoutesContext): void {
  const { namespaces } = ctx;

  app.post('/v1/namespaces/:ns/create', async (req, reply) => {
    const name = namespaceParam(req);
    const body = jsonObjectBody(req);
    checkNamespaceName(name);
    if (ctx.isReplica) throw new AdminRequestError('NOT_A_PRIMARY', 'database is not a primary');
    const isDefault = name === DEFAULT_NAMESPACE;
    const { settings, dumpUrl } = await parseCreateRequest(body, isDefault ? namespaces.config(name) : DEFAULT_NAMESPACE_CONFIG);
    // Refused before a dump is fetched; Namespaces.create checks again (a concurrent create of the name).
    if (isDefault && dumpUrl !== null) throw new DumpLoadError('DUMP_EXISTING_DB', 'Cannot load from a dump if a database already exists.');
    if (!isDefault && namespaces.exists(name)) throw new NamespaceExistsError(name);
    const dump = dumpUrl === null ? null : await readDump(dumpUrl);
    await namespaces.create(name, settings, dump === null ? undefined : (db) => loadDump(db, dump));
    return reply.code(200).send();
  });

  app.post('/v1/namespaces/:from/fork/:to', async (req, reply) => {
    const { from, to } = req.params as { from: string; to: string };
    const time = forkTime(jsonObjectBody(req, { optional: true }));
    await forkNamespace({ namespaces, isReplica: ctx.isReplica, backups: ctx.backups }, from, to, time);
    return reply.code(200).send();
  });

  app.delete('/v1/namespaces/:ns', async (req, reply) => {
    const name = namespaceParam(req);
    // sqld's default: the backups go with the namespace.
    const keepBackup = field.bool(jsonObjectBody(req, { optional: true }), 'keep_backup') ?? false;
    requireNamespace(namespaces, name);
    const backups = ctx.backups;
    // As sqld: a delete that keeps the backup first waits until the backup holds everything committed.
    // Not reached in time: nothing is deleted (500), the caller may retry.
    if (backups && keepBackup) await backups.savepoint(name);
    await namespaces.delete(name, { keepBackup });
    if (backups && !keepBackup && !ctx.isReplica) {
      // The namespace is gone (its uploader closed with it): a prune that fails is logged, the answer
      // stays 200 (as sqld, which prunes in the background after answering). A replica never prunes:
      // the backups under the name are its primary's.
      await backups.prune(name).catch((err: unknown) => {
        ctx.logger.error({ err, namespace: name }, `namespace ${name} was deleted, but pruning its backups failed: ${errorMessage(err)}; remove them with \`libsqlctl bottomless rm\``);
      });
    }
    return reply.code(200).send();
  });

  app.get('/v1/namespaces/:ns/config', async (req, reply) => {
    const name = namespaceParam(req);
    requireNamespace(namespaces, name);
    const config = namespaces.config(name);
    return reply.code(200).header('content-type', 'application/json').send(JSON.stringify({ ...configJson(config), config_version: config.version }));
  });

  app.post('/v1/namespaces/:ns/config', async (req, reply) => {
    const name = namespaceParam(req);
    const body = jsonObjectBody(req);
    requireNamespace(namespaces, name);
    const settings = await applyConfigRequest(body, namespaces.config(name));
    namespaces.setConfig(name, settings);
    return reply.code(200).send();
  });

  app.post('/v1/namespaces/:ns/checkpoint', async (req, reply) => {
    const name = namespaceParam(req);
    requireNamespace(namespaces, name);
    // As sqld: only a loaded namespace has a WAL to checkpoint.
    await namespaces.peek(name)?.checkpoint();
    return reply.code(200).send();
  });
}
