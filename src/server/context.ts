import type { ServeConfig } from '../config/serve-config.js';
import type { Logger } from '../engine/logger.js';
import type { Namespaces } from '../engine/namespaces.js';
import type { ConnectionSlots } from './admission.js';
import type { AuthStrategy } from './auth/strategy.js';
import type { HttpStreams } from './http/http-streams.js';
import type { ResponseBudget } from './response-budget.js';

/** Everything request handlers share; built once by createServer. */
export interface ServerContext {
  config: ServeConfig;
  /** The server's one logger (also fastify's). */
  logger: Logger;
  namespaces: Namespaces;
  auth: AuthStrategy;
  slots: ConnectionSlots;
  httpStreams: HttpStreams;
  responses: ResponseBudget;
  /** Called on every request (idle-shutdown timer). */
  touch(): void;
  /** True once shutdown began: responses then close their connection so keep-alive clients let go. */
  isClosing(): boolean;
}
