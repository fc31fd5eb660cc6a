import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../../context.js';
import { CONSOLE_PAGE, CONSOLE_SCRIPT, CONSOLE_STYLE } from '../console-page.js';

/** A CSP source allowing exactly this inline code (hashed as the browser does: UTF-8 bytes, base64 SHA-256). */
const hashSource = (code: string): string => `'sha256-${createHash('sha256').update(code, 'utf8').digest('base64')}'`;

/**
 * Nothing but the page's own inline style and script, and requests to its own origin. The page is
 * static, so hashes (fixed at start) serve instead of a per-response nonce.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  `script-src ${hashSource(CONSOLE_SCRIPT)}`,
  `style-src ${hashSource(CONSOLE_STYLE)}`,
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * `GET /console` with `--enable-http-console` (docs/CONSOLE.md): the web SQL console. The page needs
 * no credentials (it is static, as sqld's); every query it sends goes through the Hrana API and its
 * authorization. Without the flag the route does not exist and the not-found handler answers 404.
 */
export function consoleRoutes(app: FastifyInstance, ctx: ServerContext): void {
  if (!ctx.config.httpConsole) return;
  app.get('/console', (_req, reply) =>
    reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('content-security-policy', CONTENT_SECURITY_POLICY)
      .header('x-frame-options', 'DENY')
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('cache-control', 'no-store')
      .send(CONSOLE_PAGE),
  );
}
