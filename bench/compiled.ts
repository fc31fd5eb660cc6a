/**
 * The product's modules as a user runs them: the compiled JavaScript under dist/ (what `npx
 * libsqlctl serve` loads), typed by their sources. The bench itself runs through tsx, whose
 * transform of src/ differs from tsc's output (esbuild keeps function names by wrapping every
 * named closure in a helper call, per closure created), so measuring src/ through it measured code
 * no user runs. dist/ is compiled once per bench process (ensureBuilt; BENCH_NO_BUILD=1 skips it).
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as ServeConfig from '../src/config/serve-config.js';
import type * as ServeFlags from '../src/config/serve-flags.js';
import type * as DataDir from '../src/engine/data-dir.js';
import type * as Logger from '../src/engine/logger.js';
import type * as NamespaceDbModule from '../src/engine/namespace-db.js';
import type * as Primary from '../src/engine/roles/primary-role.js';
import type * as Replica from '../src/engine/roles/replica-role.js';
import type * as Server from '../src/server/server.js';
import { ensureBuilt, ROOT } from './bottomless-harness.js';
import type { BenchOptions } from './types.js';

export interface Compiled {
  resolveServeConfig: typeof ServeConfig.resolveServeConfig;
  serveFlagDefaults: typeof ServeFlags.serveFlagDefaults;
  startServer: typeof Server.startServer;
  createLogger: typeof Logger.createLogger;
  NamespacePaths: typeof DataDir.NamespacePaths;
  NamespaceDb: typeof NamespaceDbModule.NamespaceDb;
  PrimaryRole: typeof Primary.PrimaryRole;
  ReplicaRole: typeof Replica.ReplicaRole;
}

function load<T>(rel: string): Promise<T> {
  return import(pathToFileURL(path.join(ROOT, 'dist', rel)).href) as Promise<T>;
}

let loaded: Promise<Compiled> | undefined;

async function loadAll(): Promise<Compiled> {
  const [config, flags, server, logger, dataDir, nsDb, primary, replica] = await Promise.all([
    load<typeof ServeConfig>('config/serve-config.js'),
    load<typeof ServeFlags>('config/serve-flags.js'),
    load<typeof Server>('server/server.js'),
    load<typeof Logger>('engine/logger.js'),
    load<typeof DataDir>('engine/data-dir.js'),
    load<typeof NamespaceDbModule>('engine/namespace-db.js'),
    load<typeof Primary>('engine/roles/primary-role.js'),
    load<typeof Replica>('engine/roles/replica-role.js'),
  ]);
  return {
    resolveServeConfig: config.resolveServeConfig,
    serveFlagDefaults: flags.serveFlagDefaults,
    startServer: server.startServer,
    createLogger: logger.createLogger,
    NamespacePaths: dataDir.NamespacePaths,
    NamespaceDb: nsDb.NamespaceDb,
    PrimaryRole: primary.PrimaryRole,
    ReplicaRole: replica.ReplicaRole,
  };
}

/** The compiled modules, building dist/ first when this process has not (pass no options in a child the runner started: it built them). */
export function compiled(opts?: BenchOptions): Promise<Compiled> {
  if (opts !== undefined) ensureBuilt(opts);
  loaded ??= loadAll();
  return loaded;
}
