/**
 * Admin routes that change namespaces (spec §9): create (with a dump), delete, config GET/POST,
 * checkpoint. Statuses and texts are sqld's; errors go through the one HTTP error map.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { NotFoundError } from '../../errors.js';
import { DumpLoadError, loadDump } from '../../engine/dump-load.js';
import { DEFAULT_NAMESPACE_CONFIG } from '../../engine/namespace-config.js';
import { checkNamespaceName } from '../../engine/namespace-name.js';
import { DEFAULT_NAMESPACE, NamespaceExistsError, type Namespaces } from '../../engine/namespaces.js';
import { field, jsonObjectBody } from './admin-body.js';
import { AdminRequestError, applyConfigRequest, configJson, parseCreateRequest } from './config-json.js';
import { readDump } from './dump-source.js';

export interface NamespaceRoutesContext {
  namespaces: Namespaces;
  /** A replica takes its namespaces from its primary: it creates none itself. */
  isReplica: boolean;
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

  app.delete('/v1/namespaces/:ns', async (req, reply) => {
    const name = namespaceParam(req);
    // `keep_backup` is accepted; pruning a deleted namespace's backups is not built yet (docs/ADMIN.md).
    field.bool(jsonObjectBody(req, { optional: true }), 'keep_backup');
    requireNamespace(namespaces, name);
    await namespaces.delete(name);
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
