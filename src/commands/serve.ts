import { resolveServeConfig } from '../config/serve-config.js';
import { serveFlags } from '../config/serve-flags.js';
import { readServeEnv } from '../config/env.js';
import { BaseCommand } from '../cli/base-command.js';
import { welcomeBanner } from '../cli/welcome.js';

export default class Serve extends BaseCommand {
  static override description = 'Run a libSQL server (sqld-compatible): Hrana over HTTP and WebSocket, legacy HTTP API.';

  static override examples = ['<%= config.bin %> serve', '<%= config.bin %> serve --db-path ./data.sqld --http-listen-addr 127.0.0.1:8080'];

  static override flags = serveFlags;

  async run(): Promise<void> {
    const { flags } = await this.parse(Serve);
    const config = await resolveServeConfig(flags, readServeEnv());
    // The server's module graph (fastify, gRPC, protobuf) loads only when a server starts: other
    // commands, `-h` and `-V` start without it (oclif loads every command class to find one).
    const { startServer } = await import('../server/server.js');
    const server = await startServer(config);
    if (config.welcome) this.log(welcomeBanner(config, server.httpAddress, server.hranaWsAddress, server.cluster.grpcAddress, server.adminAddress));

    let signals = 0;
    const onSignal = (signal: NodeJS.Signals): void => {
      signals += 1;
      if (signals > 1) process.exit(130);
      void server.close({ signal });
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    await server.stopped;
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
