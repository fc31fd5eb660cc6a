import type { ServeEnv } from './serve-config.js';

/** The environment variables `serve` reads besides those oclif maps onto flags. */
export function readServeEnv(env: NodeJS.ProcessEnv = process.env): ServeEnv {
  return { SQLD_AUTH_JWT_KEY: env.SQLD_AUTH_JWT_KEY, LIBSQLCTL_TEST_APPLIER_CRASH_AT: env.LIBSQLCTL_TEST_APPLIER_CRASH_AT, LIBSQLCTL_TEST_APPLY_DELAY_MS: env.LIBSQLCTL_TEST_APPLY_DELAY_MS };
}
