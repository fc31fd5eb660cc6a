/**
 * A compiled `serve` (dist/) in its own process for the replication benchmarks (so primary and
 * replica do not share an event loop): `node --import tsx bench/server-child.ts '<flags as JSON>'`.
 * Prints one line `READY {"http":<port>,"grpc":<port|null>}` once listening; stops on SIGTERM or
 * when stdin closes.
 */
import type { ServeFlags } from '../src/config/serve-config.js';
import { compiled } from './compiled.js';

// The runner compiled dist/ before it started this process.
const { resolveServeConfig, serveFlagDefaults, createLogger, startServer } = await compiled();

const flags = JSON.parse(process.argv[2] ?? '{}') as Partial<ServeFlags>;
const config = await resolveServeConfig({ ...serveFlagDefaults(), 'no-welcome': true, ...flags }, {});
const server = await startServer(config, { logger: createLogger({ level: process.env.BENCH_LOG_LEVEL ?? 'warn' }) });
process.stdout.write(`READY ${JSON.stringify({ http: server.httpAddress.port, grpc: server.cluster.grpcAddress?.port ?? null })}\n`);
const stop = (): void => {
  void server.close().finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.stdin.on('end', stop);
process.stdin.resume();
