import path from 'node:path';
import type { ServeConfig } from '../config/serve-config.js';
import { DataDirPaths } from '../engine/data-dir.js';
import { DEFAULT_NAMESPACE } from '../engine/namespaces.js';
import { SERVER_VERSION } from '../version.js';

/** Relative to the working directory when inside it, absolute otherwise. */
function displayPath(p: string): string {
  const rel = path.relative(process.cwd(), p);
  return rel.startsWith('..') || path.isAbsolute(rel) ? p : rel;
}

function hostPort(a: { host: string; port: number }): string {
  return `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
}

type Addr = { host: string; port: number };

function roleLines(config: ServeConfig, grpc: Addr | null): string[] {
  const c = config.cluster;
  if (c.role === 'replica') return [`  replica of     ${c.primary.url}  (reads here, writes forwarded to the primary)`];
  if (grpc === null) return [];
  return [`  replicas       ${c.grpc?.tls ? 'https' : 'http'}://${hostPort(grpc)}  (inter-node gRPC${c.grpc?.tls ? ', mutual TLS' : ''})`];
}

export function welcomeBanner(config: ServeConfig, http: Addr, hranaWs: Addr | null = null, grpc: Addr | null = null, admin: Addr | null = null): string {
  const auth = config.auth.kind === 'disabled' ? 'disabled (anyone can read and write)' : config.auth.kind === 'basic' ? 'HTTP basic' : 'JWT (Ed25519)';
  return [
    `libsqlctl serve — libSQL server (sqld ${SERVER_VERSION} compatible)`,
    `  listening on   http://${hostPort(http)}  (Hrana over HTTP and ws://, legacy API)`,
    ...(hranaWs ? [`  Hrana over ws  ws://${hostPort(hranaWs)}  (WebSocket only)`] : []),
    ...roleLines(config, grpc),
    ...(admin ? [`  admin API      http://${hostPort(admin)}  (${config.admin?.authKey ? 'key required' : 'no key: anyone who reaches it can change namespaces'})`] : []),
    `  data in        ${displayPath(new DataDirPaths(config.dbPath).namespace(DEFAULT_NAMESPACE).db)}`,
    `  auth           ${auth}`,
    ...(config.jwtKeyIgnored ? ['                 (a JWT key is also configured; as in sqld, basic auth is used)'] : []),
    '  Ctrl-C to stop',
  ].join('\n');
}
