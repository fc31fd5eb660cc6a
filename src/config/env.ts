import type { ServeEnv } from './serve-config.js';
import { serveFlagVariables } from './serve-flags.js';
import { BOTTOMLESS_VARIABLES, readBottomlessEnv } from './bottomless-config.js';
import { checkSqldEnvironment } from './sqld-settings.js';

/** Variables `serve` reads besides those of its flags. */
const OTHER_VARIABLES = ['SQLD_AUTH_JWT_KEY'];

/**
 * The environment variables `serve` reads besides those oclif maps onto flags. Throws (a
 * ConfigError) for a sqld variable we do not honour that would change the server's role or
 * durability; names the other unread `SQLD_*`/`LIBSQL_*` variables in `ignored`.
 */
export function readServeEnv(env: NodeJS.ProcessEnv = process.env): ServeEnv {
  const ignored = checkSqldEnvironment(env, new Set([...serveFlagVariables, ...OTHER_VARIABLES, ...BOTTOMLESS_VARIABLES]));
  return { SQLD_AUTH_JWT_KEY: env.SQLD_AUTH_JWT_KEY, RUST_LOG: env.RUST_LOG, LIBSQLCTL_TEST_APPLIER_CRASH_AT: env.LIBSQLCTL_TEST_APPLIER_CRASH_AT, LIBSQLCTL_TEST_APPLY_DELAY_MS: env.LIBSQLCTL_TEST_APPLY_DELAY_MS, bottomless: readBottomlessEnv(env), ignored };
}
