import type { Server } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import type { ListenAddr } from '../config/parse.js';
import type { ServeConfig } from '../config/serve-config.js';
import { LibsqlctlError } from '../errors.js';
import type { ServerContext } from './context.js';
import { createLimitedHttpServer } from './http/connection-guard.js';
import { attachHranaWebSocket } from './ws/hrana-ws.js';

/** A listen failure as the operator should read it. */
export function listenError(err: unknown, addr: ListenAddr, flag: string): LibsqlctlError {
  const code = (err as NodeJS.ErrnoException).code;
  const why = code === 'EADDRINUSE' ? 'address already in use' : err instanceof Error ? err.message : String(err);
  return new LibsqlctlError('LISTEN_FAILED', `cannot listen on ${addr.host}:${addr.port}: ${why}`, {
    cause: err,
    hint: `Stop the other server on that address or pick another ${flag}.`,
  });
}

/** The fixed addresses the server will listen on (port 0 asks for any free port: nothing to check). */
function fixedAddresses(config: ServeConfig): { addr: ListenAddr; flag: string }[] {
  const all = [{ addr: config.http, flag: '--http-listen-addr' }];
  if (config.hranaWs) all.push({ addr: config.hranaWs, flag: '--hrana-listen-addr' });
  if (config.admin) all.push({ addr: config.admin.listen, flag: '--admin-listen-addr' });
  if (config.cluster.role === 'primary' && config.cluster.grpc) all.push({ addr: config.cluster.grpc.listen, flag: '--grpc-listen-addr' });
  return all.filter((a) => a.addr.port !== 0);
}

/**
 * Binds each fixed address once and lets it go, before anything is created on disk: an address in
 * use (or not ours to bind) is reported before the data directory exists. The real listen later
 * still reports a port someone took in between.
 */
export async function checkListenAddresses(config: ServeConfig): Promise<void> {
  for (const { addr, flag } of fixedAddresses(config)) {
    const probe = net.createServer();
    try {
      await new Promise<void>((resolve, reject) => {
        probe.once('error', reject);
        probe.listen({ port: addr.port, host: addr.host, exclusive: true }, () => resolve());
      });
    } catch (err) {
      throw listenError(err, addr, flag);
    } finally {
      await new Promise<void>((resolve) => (probe.listening ? probe.close(() => resolve()) : resolve()));
    }
  }
}

export interface HranaWsListener {
  readonly address: { host: string; port: number };
  close(): Promise<void>;
}

/**
 * `--hrana-listen-addr`: sqld's dedicated WebSocket-only Hrana listener (handshake on any path,
 * `server: sqld-hrana-tcp`); plain HTTP requests get 404.
 */
export async function startHranaWsListener(ctx: ServerContext, addr: ListenAddr): Promise<HranaWsListener> {
  const server: Server = createLimitedHttpServer(ctx.config.connections, (_req, res) => {
    res.statusCode = 404;
    res.end();
  });
  ctx.connectionGuard.watch(server);
  const ws = attachHranaWebSocket(server, ctx, { anyPath: true, serverHeader: 'sqld-hrana-tcp' });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(addr.port, addr.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    ws.close();
    throw listenError(err, addr, '--hrana-listen-addr');
  }
  const { address, port } = server.address() as AddressInfo;
  return {
    address: { host: address, port },
    close: () =>
      new Promise<void>((resolve) => {
        ws.close();
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}
