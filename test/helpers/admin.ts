import { createClient, type Client } from '@libsql/client';
import type { ServeFlags } from '../../src/config/serve-config.js';
import type { ServeConfig, ServeEnv } from '../../src/config/serve-config.js';
import { startTestServer, type TestServer } from './test-server.js';

export const ADMIN_KEY = 'admin-secret';

export interface AdminAnswer {
  status: number;
  type: string;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: unknown;
}

export interface AdminTestServer extends TestServer {
  adminUrl: string;
  /** An admin request with the admin key (unless `headers` sets `authorization`). */
  admin(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<AdminAnswer>;
  /** An `@libsql/client` on the user port for a namespace (sent as `x-namespace`). */
  client(namespace: string, opts?: { authToken?: string; url?: string }): Client;
}

/** A test server with namespaces enabled and the admin API on a free loopback port, behind ADMIN_KEY. */
export async function startAdminServer(
  flags: Partial<ServeFlags> = {},
  limits: Partial<ServeConfig['limits']> = {},
  env: Pick<ServeEnv, 'SQLD_AUTH_JWT_KEY' | 'bottomless'> = {},
): Promise<AdminTestServer> {
  const srv = await startTestServer({ 'enable-namespaces': true, 'admin-listen-addr': '127.0.0.1:0', 'admin-auth-key': ADMIN_KEY, ...flags }, env, limits);
  const address = srv.server.adminAddress;
  if (!address) throw new Error('the admin listener did not start');
  const adminUrl = `http://127.0.0.1:${address.port}`;
  const clients: Client[] = [];
  return {
    ...srv,
    adminUrl,
    admin: async (method, path, body, headers = {}) => {
      const init: RequestInit = { method, headers: { authorization: `Basic ${ADMIN_KEY}`, ...headers } };
      if (body !== undefined) {
        init.body = typeof body === 'string' ? body : JSON.stringify(body);
        init.headers = { 'content-type': 'application/json', ...(init.headers as Record<string, string>) };
      }
      const res = await fetch(`${adminUrl}${path}`, init);
      const text = await res.text();
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      return { status: res.status, type: res.headers.get('content-type') ?? '', text, json };
    },
    client: (namespace, opts = {}) => {
      const client = createClient({
        url: opts.url ?? srv.url,
        ...(opts.authToken ? { authToken: opts.authToken } : {}),
        fetch: (input: string | URL | Request, init?: RequestInit) => {
          const req = new Request(input, init);
          req.headers.set('x-namespace', namespace);
          return fetch(req);
        },
      });
      clients.push(client);
      return client;
    },
    close: async () => {
      for (const c of clients) c.close();
      await srv.close();
    },
  };
}

/** `POST /v1/namespaces/:ns/create` that must succeed. */
export async function createNamespace(srv: AdminTestServer, name: string, body: Record<string, unknown> = {}): Promise<void> {
  const r = await srv.admin('POST', `/v1/namespaces/${encodeURIComponent(name)}/create`, body);
  if (r.status !== 200) throw new Error(`create ${name}: ${r.status} ${r.text}`);
}
