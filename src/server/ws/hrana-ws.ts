import type { Server } from 'node:http';
import type { ServerContext } from '../context.js';

/** Hrana over WebSocket on the user port (GET / upgrade). Placeholder until the transport lands. */
export function attachHranaWebSocket(_server: Server, _ctx: ServerContext): { close(): void } {
  return { close() {} };
}
