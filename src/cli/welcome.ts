import path from 'node:path';
import type { ServeConfig } from '../config/serve-config.js';
import { SERVER_VERSION } from '../version.js';

export function welcomeBanner(config: ServeConfig, http: { host: string; port: number }): string {
  const host = http.host.includes(':') ? `[${http.host}]` : http.host;
  const auth = config.auth.kind === 'disabled' ? 'disabled (anyone can read and write)' : config.auth.kind === 'basic' ? 'HTTP basic' : 'JWT (Ed25519)';
  return [
    `libsqlctl serve — libSQL server (sqld ${SERVER_VERSION} compatible)`,
    `  listening on   http://${host}:${http.port}  (Hrana over HTTP and ws://, legacy API)`,
    `  data in        ${path.relative(process.cwd(), config.dbPath) || '.'}${path.sep}dbs${path.sep}default${path.sep}data`,
    `  auth           ${auth}`,
    '  Ctrl-C to stop',
  ].join('\n');
}
