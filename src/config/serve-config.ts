import fs from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '../errors.js';
import { parseCrashAt, type ApplierCrashPoint } from '../engine/replica/crash-points.js';
import { parseJwtKeys, type JwtKey } from '../server/auth/jwt-keys.js';
import type { AuthConfig } from '../server/auth/strategy.js';
import { resolveBottomlessConfig, type BottomlessConfig, type BottomlessEnv } from './bottomless-config.js';
import { resolveLogLevel, type LogLevel } from './log-level.js';
import { resolveClusterConfig, type ClusterConfig, type ClusterFlags } from './cluster-config.js';
import { resolveConnectionLimits, type ConnectionFlags, type ConnectionLimits } from './connection-limits.js';
import { parseByteSize, parseListenAddr, parsePositive, type ListenAddr } from './parse.js';
import { refuseUnsupportedFlags } from './sqld-settings.js';
import { resolveTrustedExtensions } from './extensions.js';
import { fsReason } from '../engine/fs-errors.js';

/** Raw `serve` flags as oclif hands them over (each already falls back to its SQLD_* variable). */
export interface ServeFlags extends ClusterFlags, ConnectionFlags {
  'db-path': string;
  'http-listen-addr': string;
  'hrana-listen-addr'?: string | undefined;
  'http-auth'?: string | undefined;
  'auth-jwt-key-file'?: string | undefined;
  'http-self-url'?: string | undefined;
  'no-welcome'?: boolean | undefined;
  'max-response-size': string;
  'max-total-response-size': string;
  'max-concurrent-connections': number;
  'max-concurrent-requests': number;
  'connection-creation-timeout-sec'?: number | undefined;
  'checkpoint-interval-s'?: number | undefined;
  'idle-shutdown-timeout-s'?: number | undefined;
  'initial-idle-shutdown-timeout-s'?: number | undefined;
  'log-level'?: string | undefined;
  'shutdown-timeout': number;
  'replica-read-grace-ms'?: number | undefined;
  'max-log-size'?: number | undefined;
  'max-log-duration'?: string | number | undefined;
  'snapshot-exec'?: string | undefined;
  'snapshot-at-shutdown'?: boolean | undefined;
  'enable-bottomless-replication'?: boolean | undefined;
  'bottomless-snapshot-every-generations'?: number | undefined;
  'bottomless-snapshot-every-mb'?: number | undefined;
  'bottomless-staging-max-mb'?: number | undefined;
  'enable-http-console'?: boolean | undefined;
  'enable-namespaces'?: boolean | undefined;
  'max-active-namespaces'?: string | undefined;
  'disable-default-namespace'?: boolean | undefined;
  'extensions-path'?: string | undefined;
  'max-statement-duration-s'?: string | undefined;
  'admin-listen-addr'?: string | undefined;
  'admin-auth-key'?: string | undefined;
  'heartbeat-url'?: string | undefined;
  'heartbeat-auth'?: string | undefined;
  'heartbeat-period-s'?: string | undefined;
}

/** Heartbeats (spec §9): each namespace's stats POSTed to `<url>/<namespace>` every period. */
export interface HeartbeatConfig {
  /** `--heartbeat-url`; null: only namespaces with their own `heartbeat_url` send. */
  url: string | null;
  /** `--heartbeat-auth`: the `authorization` header's value; null: none. */
  auth: string | null;
  /** `--heartbeat-period-s` (default 30). */
  periodMs: number;
}

/** The admin API (`--admin-listen-addr`, src/server/admin/, docs/ADMIN.md). */
export interface AdminConfig {
  listen: ListenAddr;
  /** `--admin-auth-key`: every admin request needs `authorization: Basic <key>`; null = open. */
  authKey: string | null;
}

export interface ServeLimits {
  /** `--max-response-size`: bytes one response may hold (estimated as JSON). Default 10 MB. */
  maxResponseBytes: number;
  /** `--max-total-response-size`: bytes all in-flight responses may hold together. Default 32 MB. */
  maxTotalResponseBytes: number;
  /** `--max-concurrent-connections`: SQLite connections open at once across namespaces. Default 128. */
  maxConcurrentConnections: number;
  /** `--max-concurrent-requests`: requests in flight or queued per namespace before 429. Default 128. */
  maxConcurrentRequests: number;
  /** `--connection-creation-timeout-sec`: wait for a free connection slot before 429. Default 1 s. */
  connectionCreationTimeoutMs: number;
  /** sqld's TRANSACTION_TIMEOUT: a write lock held longer than this while others wait is revoked. */
  txnTimeoutMs: number;
  /** Idle Hrana-over-HTTP streams expire after this long. */
  streamExpiryMs: number;
  /** `--max-statement-duration-s`: a client statement running longer is interrupted (watchdog.ts); 0 = no limit. Default 10 s. */
  maxStatementDurationMs: number;
}

/** When the server's backups take full snapshots, and how much they stage while the store is away. */
export interface BackupPolicy {
  snapshotEveryGenerations: number;
  snapshotEveryWalBytes: number;
  stagingCapBytes: number;
}

export interface ServeConfig {
  /** Data directory (`--db-path`, default `data.sqld`); databases live in `<dbPath>/dbs/<ns>/data`. */
  dbPath: string;
  http: ListenAddr;
  /** `--hrana-listen-addr`: a WebSocket-only Hrana listener besides the user port, or null. */
  hranaWs: ListenAddr | null;
  auth: AuthConfig;
  /** A JWT key was given too, but `--http-auth` wins (as in sqld): the banner and the log say so. */
  jwtKeyIgnored: boolean;
  /** Hrana `base_url` for sticky sessions (`--http-self-url`). */
  httpSelfUrl: string | null;
  welcome: boolean;
  /** `maxActive`: `--max-active-namespaces` (default 100, as sqld): databases open at once before idle ones close. */
  namespaces: { enabled: boolean; defaultDisabled: boolean; maxActive: number };
  limits: ServeLimits;
  /** Timeouts and caps per TCP connection (connection-limits.ts, docs/LIMITS.md). */
  connections: ConnectionLimits;
  /** `--checkpoint-interval-s`: periodic checkpoint; null = only on WAL size. */
  checkpointIntervalS: number | null;
  /** Replication log: compaction (`--max-log-size` MB, `--max-log-duration` s) and `--snapshot-exec`. */
  log: { maxLogFrames: bigint; maxLogDurationMs: number | null; snapshotExec: string | null };
  /** `--snapshot-at-shutdown`: a primary compacts each open namespace's log into a snapshot when it closes (after the TRUNCATE checkpoint every close runs). */
  snapshotAtShutdown: boolean;
  /** `--enable-http-console`: the web SQL console at `GET /console`. */
  httpConsole: boolean;
  /** `--admin-listen-addr`: the admin API's own listener; null = off (the default). */
  admin: AdminConfig | null;
  /** `--heartbeat-*` (sent for namespaces with a heartbeat URL, their own or this one). */
  heartbeat: HeartbeatConfig;
  /** `--enable-bottomless-replication`: continuous backup of every primary namespace; null = off. */
  bottomless: (BottomlessConfig & { policy: BackupPolicy }) | null;
  /** `--idle-shutdown-timeout-s`: stop after this long without requests; null = never. */
  idleShutdownTimeoutS: number | null;
  /** `--initial-idle-shutdown-timeout-s`: the idle timeout until the first request after start; null = idleShutdownTimeoutS. */
  initialIdleShutdownTimeoutS: number | null;
  /** `--log-level`, else from `RUST_LOG` (log-level.ts), else `info`. */
  logLevel: LogLevel;
  /** RUST_LOG directives ignored because they cannot be parsed (named in one warning at start-up). */
  ignoredRustLog: readonly string[];
  /** `--shutdown-timeout`: seconds in-flight requests get to finish on SIGINT/SIGTERM. Default 30. */
  shutdownTimeoutS: number;
  /** Primary (with or without an inter-node gRPC port) or replica of a primary. */
  cluster: ClusterConfig;
  /** Replica role settings (used once the server runs as a replica). */
  replica: {
    /** `--replica-read-grace-ms`: an open read transaction may hold up applying frames this long. Default 200. */
    readGraceMs: number;
  };
  /**
   * `--extensions-path`: absolute paths of the trusted extensions (listed in its trusted.lst, sha256
   * checked at start-up), loaded into every client connection; empty = extension loading is off.
   */
  extensions: readonly string[];
  /** sqld variables that are set but that nothing reads (the server warns about them once). */
  ignoredEnv: readonly string[];
  /** Test-only hooks, from the environment (never set in production). */
  testHooks: {
    /** `LIBSQLCTL_TEST_APPLIER_CRASH_AT=<point>[:<n>]`: the replica applier kills the process there. */
    applierCrashAt: { point: ApplierCrashPoint; after: number } | null;
    /** `LIBSQLCTL_TEST_APPLY_DELAY_MS=<ms>`: a replica waits this long before applying each batch. */
    applyDelayMs: number | null;
  };
}

export interface ServeEnv {
  SQLD_AUTH_JWT_KEY?: string | undefined;
  /** sqld's log filter (log-level.ts maps it onto one level). */
  RUST_LOG?: string | undefined;
  LIBSQLCTL_TEST_APPLIER_CRASH_AT?: string | undefined;
  LIBSQLCTL_TEST_APPLY_DELAY_MS?: string | undefined;
  /** `LIBSQL_BOTTOMLESS_*`: read when backups are on, named as ignored otherwise. */
  bottomless?: BottomlessEnv | undefined;
  /** `SQLD_*`/`LIBSQL_*` variables nothing reads (readServeEnv): named in a warning at start-up. */
  ignored?: readonly string[] | undefined;
}

function crashAt(value: string | undefined): ServeConfig['testHooks']['applierCrashAt'] {
  try {
    return parseCrashAt(value);
  } catch (err) {
    throw new ConfigError('CONFIG_TEST_HOOK', `LIBSQLCTL_TEST_APPLIER_CRASH_AT: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

const KEY_HINT = 'Give an Ed25519 public key: PEM "PUBLIC KEY" blocks, or 32 raw bytes in URL-safe base64.';

/** Parses JWT keys, naming where they came from in the error. */
async function keysFrom(text: string, source: string): Promise<JwtKey[]> {
  if (text.trim() === '') {
    throw new ConfigError('CONFIG_JWT_KEY', `${source}: no key in it (it is empty)`, { hint: KEY_HINT });
  }
  try {
    return await parseJwtKeys(text.trim());
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    throw new ConfigError(err.code, `${source}: ${err.message}`, { cause: err, hint: KEY_HINT });
  }
}

async function resolveAuth(flags: ServeFlags, env: ServeEnv): Promise<AuthConfig> {
  const httpAuth = flags['http-auth'];
  if (httpAuth) {
    if (httpAuth === 'always') return { kind: 'basic', credential: 'always' };
    if (!httpAuth.startsWith('basic:') || httpAuth.length === 'basic:'.length) {
      throw new ConfigError('CONFIG_HTTP_AUTH', `--http-auth: expected basic:<base64 of user:password>, got \`${httpAuth}\``);
    }
    return { kind: 'basic', credential: httpAuth.slice('basic:'.length).replace(/=+$/, '') };
  }
  const keyFile = flags['auth-jwt-key-file'];
  if (keyFile) {
    let text: string;
    try {
      text = await fs.readFile(keyFile, 'utf8');
    } catch (err) {
      throw new ConfigError('CONFIG_JWT_KEY', `--auth-jwt-key-file: cannot read ${keyFile}: ${fsReason(err)}`, {
        cause: err,
        hint: 'give the path of a readable file holding the public key (or pass the key itself in SQLD_AUTH_JWT_KEY)',
      });
    }
    return { kind: 'jwt', keys: await keysFrom(text, `--auth-jwt-key-file ${keyFile}`) };
  }
  if (env.SQLD_AUTH_JWT_KEY) return { kind: 'jwt', keys: await keysFrom(env.SQLD_AUTH_JWT_KEY, 'SQLD_AUTH_JWT_KEY') };
  return { kind: 'disabled' };
}

/** The one place `serve` input is validated and defaulted. */
/** Backups need a primary; with namespaces, sqld insists on a database id (every name would be `ns-:<ns>` otherwise). */
function resolveServeBottomless(flags: ServeFlags, env: ServeEnv): ServeConfig['bottomless'] {
  if (!flags['enable-bottomless-replication']) return null;
  if (flags['primary-grpc-url']) {
    throw new ConfigError('CONFIG_BOTTOMLESS_REPLICA', '--enable-bottomless-replication: a replica has nothing of its own to back up', {
      hint: 'enable backups on the primary, or leave out --primary-grpc-url',
    });
  }
  const config = resolveBottomlessConfig(env.bottomless ?? {});
  if (flags['enable-namespaces'] && config.databaseId === '') {
    throw new ConfigError('CONFIG_BOTTOMLESS', '--enable-bottomless-replication with --enable-namespaces needs LIBSQL_BOTTOMLESS_DATABASE_ID (as in sqld)', {
      hint: 'set LIBSQL_BOTTOMLESS_DATABASE_ID to a name for this server, e.g. its host name',
    });
  }
  const mb = (flag: 'bottomless-snapshot-every-mb' | 'bottomless-staging-max-mb', fallback: number): number =>
    (parsePositive(flags[flag], `--${flag}`, { integer: true }) ?? fallback) * 1024 * 1024;
  return {
    ...config,
    policy: {
      snapshotEveryGenerations: parsePositive(flags['bottomless-snapshot-every-generations'], '--bottomless-snapshot-every-generations', { integer: true }) ?? 32,
      snapshotEveryWalBytes: mb('bottomless-snapshot-every-mb', 256),
      stagingCapBytes: mb('bottomless-staging-max-mb', 1024),
    },
  };
}

function resolveHeartbeat(flags: ServeFlags): HeartbeatConfig {
  const url = flags['heartbeat-url'];
  if (url !== undefined && url !== '' && !/^https?:\/\//i.test(url)) {
    throw new ConfigError('CONFIG_HEARTBEAT_URL', `--heartbeat-url: not an http(s) URL: ${url}`, { hint: 'e.g. --heartbeat-url http://127.0.0.1:9000/heartbeat (each namespace posts to <url>/<namespace>)' });
  }
  if (url !== undefined && url !== '' && !URL.canParse(url)) throw new ConfigError('CONFIG_HEARTBEAT_URL', `--heartbeat-url: not a valid URL: ${url}`);
  const period = parsePositive(flags['heartbeat-period-s'], '--heartbeat-period-s') ?? 30;
  const auth = flags['heartbeat-auth'];
  return { url: url === undefined || url === '' ? null : url, auth: auth === undefined || auth === '' ? null : auth, periodMs: Math.max(1, Math.round(period * 1000)) };
}

/** The admin listener; `--admin-auth-key` alone is ignored, as in sqld (there is nothing to protect). */
function resolveAdmin(flags: ServeFlags, http: ListenAddr): AdminConfig | null {
  const listen = flags['admin-listen-addr'];
  if (listen === undefined || listen === '') return null;
  const key = flags['admin-auth-key'];
  if (key !== undefined && key.trim() === '') {
    throw new ConfigError('CONFIG_ADMIN_AUTH_KEY', '--admin-auth-key: the key is empty', { hint: 'give a secret, or leave the flag (and LIBSQL_ADMIN_AUTH_KEY) out for an admin API without a key' });
  }
  const addr = parseListenAddr(listen, '--admin-listen-addr');
  if (addr.port !== 0 && addr.port === http.port && addr.host === http.host) {
    throw new ConfigError('CONFIG_ADMIN_ADDR', `--admin-listen-addr: ${listen} is the user port's address too`, { hint: 'give the admin API a port of its own, e.g. 127.0.0.1:9090' });
  }
  return { listen: addr, authKey: key ?? null };
}

/** The watchdog's cells hold milliseconds as int32; whole milliseconds, at most ~24 days. */
const MAX_STATEMENT_DURATION_S = Math.floor(0x7fffffff / 1000);

function statementDurationMs(value: string | undefined): number {
  const s = parsePositive(value, '--max-statement-duration-s', { allowZero: true }) ?? 10;
  if (s > MAX_STATEMENT_DURATION_S) {
    throw new ConfigError('CONFIG_INVALID_NUMBER', `--max-statement-duration-s: at most ${MAX_STATEMENT_DURATION_S}, got \`${value}\``, { hint: 'give 0 for no limit' });
  }
  return s === 0 ? 0 : Math.max(1, Math.round(s * 1000));
}

export async function resolveServeConfig(flags: ServeFlags, env: ServeEnv): Promise<ServeConfig> {
  refuseUnsupportedFlags(flags as unknown as Record<string, unknown>);
  const connTimeout = parsePositive(flags['connection-creation-timeout-sec'], '--connection-creation-timeout-sec');
  const log = resolveLogLevel(flags['log-level'], env.RUST_LOG);
  const auth = await resolveAuth(flags, env);
  const http = parseListenAddr(flags['http-listen-addr'], '--http-listen-addr');
  return {
    dbPath: path.resolve(flags['db-path']),
    http,
    hranaWs: flags['hrana-listen-addr'] ? parseListenAddr(flags['hrana-listen-addr'], '--hrana-listen-addr') : null,
    auth,
    jwtKeyIgnored: auth.kind === 'basic' && Boolean(flags['auth-jwt-key-file'] || env.SQLD_AUTH_JWT_KEY),
    httpSelfUrl: flags['http-self-url'] ?? null,
    welcome: !flags['no-welcome'],
    namespaces: {
      enabled: Boolean(flags['enable-namespaces']),
      defaultDisabled: Boolean(flags['disable-default-namespace']),
      maxActive: parsePositive(flags['max-active-namespaces'], '--max-active-namespaces', { integer: true }) ?? 100,
    },
    limits: {
      maxResponseBytes: parseByteSize(flags['max-response-size'], '--max-response-size'),
      maxTotalResponseBytes: parseByteSize(flags['max-total-response-size'], '--max-total-response-size'),
      maxConcurrentConnections: parsePositive(flags['max-concurrent-connections'], '--max-concurrent-connections', { integer: true }) ?? 128,
      maxConcurrentRequests: parsePositive(flags['max-concurrent-requests'], '--max-concurrent-requests', { integer: true }) ?? 128,
      connectionCreationTimeoutMs: (connTimeout ?? 1) * 1000,
      txnTimeoutMs: 5000,
      streamExpiryMs: 10_000,
      maxStatementDurationMs: statementDurationMs(flags['max-statement-duration-s']),
    },
    connections: resolveConnectionLimits(flags),
    checkpointIntervalS: parsePositive(flags['checkpoint-interval-s'], '--checkpoint-interval-s'),
    log: {
      maxLogFrames: BigInt(Math.floor(((parsePositive(flags['max-log-size'], '--max-log-size') ?? 200) * 1_000_000) / 4120)),
      maxLogDurationMs: ((d) => (d === null ? null : d * 1000))(parsePositive(flags['max-log-duration'], '--max-log-duration')),
      snapshotExec: flags['snapshot-exec'] ?? null,
    },
    snapshotAtShutdown: Boolean(flags['snapshot-at-shutdown']),
    httpConsole: Boolean(flags['enable-http-console']),
    admin: resolveAdmin(flags, http),
    heartbeat: resolveHeartbeat(flags),
    bottomless: resolveServeBottomless(flags, env),
    idleShutdownTimeoutS: parsePositive(flags['idle-shutdown-timeout-s'], '--idle-shutdown-timeout-s'),
    initialIdleShutdownTimeoutS: parsePositive(flags['initial-idle-shutdown-timeout-s'], '--initial-idle-shutdown-timeout-s'),
    logLevel: log.level,
    ignoredRustLog: log.ignoredRustLog,
    shutdownTimeoutS: parsePositive(flags['shutdown-timeout'], '--shutdown-timeout', { allowZero: true }) ?? 30,
    cluster: await resolveClusterConfig(flags),
    replica: { readGraceMs: parsePositive(flags['replica-read-grace-ms'], '--replica-read-grace-ms', { integer: true }) ?? 200 },
    extensions: await resolveTrustedExtensions(flags['extensions-path']),
    ignoredEnv: flags['enable-bottomless-replication'] ? (env.ignored ?? []) : [...(env.ignored ?? []), ...Object.keys(env.bottomless ?? {})].sort(),
    testHooks: {
      applierCrashAt: crashAt(env.LIBSQLCTL_TEST_APPLIER_CRASH_AT),
      applyDelayMs: parsePositive(env.LIBSQLCTL_TEST_APPLY_DELAY_MS, 'LIBSQLCTL_TEST_APPLY_DELAY_MS', { integer: true }),
    },
  };
}
