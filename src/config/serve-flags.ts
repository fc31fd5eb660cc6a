import { Flags } from '@oclif/core';
import { connectionFlags } from './connection-limits.js';
import type { ServeFlags } from './serve-config.js';
import { UNSUPPORTED_SQLD_SETTINGS } from './sqld-settings.js';

/**
 * sqld's flags we do not support, accepted by the parser only to be refused with one clear line
 * (sqld-settings.ts); hidden from the help. They read no variable: their variables are checked
 * separately (a role-changing one stops the start, the others are named in a warning).
 */
const unsupportedSqldFlags = Object.fromEntries(
  UNSUPPORTED_SQLD_SETTINGS.map((s) => {
    const opts = { hidden: true };
    return [s.flag, s.switch ? Flags.boolean(opts) : Flags.string(opts)];
  }),
);

/** `serve` flags: sqld's names, each falling back to sqld's environment variable. */
export const serveFlags = {
  'db-path': Flags.string({ char: 'd', env: 'SQLD_DB_PATH', default: 'data.sqld', description: 'Data directory; databases live in <db-path>/dbs/<namespace>/data.' }),
  'http-listen-addr': Flags.string({ env: 'SQLD_HTTP_LISTEN_ADDR', default: '127.0.0.1:8080', description: 'Address and port of the user HTTP API (Hrana over HTTP and WebSocket, legacy API).' }),
  'hrana-listen-addr': Flags.string({ char: 'l', env: 'SQLD_HRANA_LISTEN_ADDR', description: 'Address and port of an extra, WebSocket-only Hrana listener (any path).' }),
  'http-auth': Flags.string({ env: 'SQLD_HTTP_AUTH', description: 'Legacy HTTP basic auth: basic:<base64 of user:password>.' }),
  'auth-jwt-key-file': Flags.string({ env: 'SQLD_AUTH_JWT_KEY_FILE', description: 'Ed25519 public key(s) for JWTs: PEM (several may be concatenated) or raw URL-safe base64. SQLD_AUTH_JWT_KEY passes the key inline.' }),
  'http-self-url': Flags.string({ env: 'SQLD_HTTP_SELF_URL', description: 'URL of this server, sent as Hrana base_url for sticky sessions.' }),
  'no-welcome': Flags.boolean({ default: false, description: "Don't display the welcome message." }),
  'enable-namespaces': Flags.boolean({ default: false, description: 'Select databases by x-namespace header or Host name.' }),
  'disable-default-namespace': Flags.boolean({ default: false, description: 'Refuse requests whose namespace cannot be determined.' }),
  'admin-listen-addr': Flags.string({ env: 'SQLD_ADMIN_LISTEN_ADDR', description: 'Address and port of the admin API (namespaces, config, stats; docs/ADMIN.md), e.g. 127.0.0.1:9090. Off by default.' }),
  'admin-auth-key': Flags.string({ env: 'LIBSQL_ADMIN_AUTH_KEY', description: 'Admin API key: every admin request needs the header "authorization: Basic <key>".' }),
  'max-active-namespaces': Flags.string({ env: 'SQLD_MAX_ACTIVE_NAMESPACES', description: 'Namespace databases kept open at once (default 100); idle ones are closed least recently used first and reopen on their next request.' }),
  'heartbeat-url': Flags.string({ env: 'SQLD_HEARTBEAT_URL', description: "Every period, POST each namespace's stats (the admin API's JSON) to <url>/<namespace>; a namespace's own heartbeat_url wins." }),
  'heartbeat-auth': Flags.string({ env: 'SQLD_HEARTBEAT_AUTH', description: 'The authorization header of heartbeat requests.' }),
  'heartbeat-period-s': Flags.string({ env: 'SQLD_HEARTBEAT_PERIOD_S', description: 'Seconds between heartbeats (default 30).' }),
  'max-response-size': Flags.string({ env: 'SQLD_MAX_RESPONSE_SIZE', default: '10MB', description: 'Maximum size of one response, e.g. 5KB, 10MB.' }),
  'max-total-response-size': Flags.string({ env: 'SQLD_MAX_TOTAL_RESPONSE_SIZE', default: '32MB', description: 'Maximum size of all responses in flight.' }),
  'max-concurrent-connections': Flags.integer({ env: 'SQLD_MAX_CONCURRENT_CONNECTIONS', default: 128, description: 'Database connections open at once.' }),
  'max-concurrent-requests': Flags.integer({ env: 'SQLD_MAX_CONCURRENT_REQUESTS', default: 128, description: 'Requests waiting for a connection before answering 429.' }),
  'connection-creation-timeout-sec': Flags.integer({ env: 'SQLD_CONNECTION_CREATION_TIMEOUT_SEC', description: 'Seconds to wait for a free connection (default 1).' }),
  'checkpoint-interval-s': Flags.integer({ env: 'SQLD_CHECKPOINT_INTERVAL_S', description: 'Checkpoint the WAL every this many seconds.' }),
  'max-log-size': Flags.integer({ env: 'SQLD_MAX_LOG_SIZE', default: 200, description: 'Compact the replication log once it grows above this many MB.' }),
  'max-log-duration': Flags.string({ env: 'SQLD_MAX_LOG_DURATION', description: 'Compact the replication log after this many seconds.' }),
  'enable-bottomless-replication': Flags.boolean({
    env: 'SQLD_ENABLE_BOTTOMLESS_REPLICATION',
    default: false,
    description: 'Back up every committed frame to S3 or a local directory (LIBSQL_BOTTOMLESS_* variables; docs/BOTTOMLESS.md).',
  }),
  'bottomless-snapshot-every-generations': Flags.integer({
    env: 'LIBSQLCTL_BOTTOMLESS_SNAPSHOT_GENERATIONS',
    default: 32,
    description: 'Backups: a full snapshot at least every this many generations (checkpoints); restores replay at most that many generations of WAL.',
  }),
  'bottomless-snapshot-every-mb': Flags.integer({
    env: 'LIBSQLCTL_BOTTOMLESS_SNAPSHOT_MB',
    default: 256,
    description: 'Backups: … or once this many MB of WAL were shipped since the last snapshot.',
  }),
  'bottomless-staging-max-mb': Flags.integer({
    env: 'LIBSQLCTL_BOTTOMLESS_STAGING_MAX_MB',
    default: 1024,
    description: 'Backups: local staging for a store that is down; beyond it the oldest staged frames are dropped and a new generation with a snapshot follows.',
  }),
  'snapshot-at-shutdown': Flags.boolean({
    env: 'SQLD_SNAPSHOT_AT_SHUTDOWN',
    default: false,
    description: "At shutdown, checkpoint each primary database's WAL (TRUNCATE) and compact its replication log into a snapshot.",
  }),
  'enable-http-console': Flags.boolean({ env: 'SQLD_ENABLE_HTTP_CONSOLE', default: false, description: 'Serve a small web SQL console at /console on the user port.' }),
  'snapshot-exec': Flags.string({ env: 'SQLD_SNAPSHOT_EXEC', description: 'Command run for each new log snapshot: <cmd> <snapshot> <namespace> <start> <end> <log_id>.' }),
  'idle-shutdown-timeout-s': Flags.integer({ env: 'SQLD_IDLE_SHUTDOWN_TIMEOUT_S', description: 'Shut down after this many seconds without requests.' }),
  'initial-idle-shutdown-timeout-s': Flags.integer({
    env: 'SQLD_INITIAL_IDLE_SHUTDOWN_TIMEOUT_S',
    description: 'Like --idle-shutdown-timeout-s, but only until the first request after start; then --idle-shutdown-timeout-s (if given) applies.',
  }),
  'log-level': Flags.string({
    env: 'LIBSQLCTL_LOG_LEVEL',
    description: 'Log level: trace, debug, info, warn, error or off (default: from RUST_LOG, else info). Wins over RUST_LOG.',
  }),
  'replica-read-grace-ms': Flags.integer({
    env: 'LIBSQLCTL_REPLICA_READ_GRACE_MS',
    default: 200,
    description: 'Replicas: how long an open read transaction may hold up applying new frames before it is rolled back (ms).',
  }),
  'grpc-listen-addr': Flags.string({ env: 'SQLD_GRPC_LISTEN_ADDR', description: 'Primary: address and port of the inter-node gRPC port replicas connect to, e.g. 127.0.0.1:5001.' }),
  'grpc-tls': Flags.boolean({ env: 'SQLD_GRPC_TLS', default: false, description: 'Primary: serve the inter-node port over TLS and require client certificates (mutual TLS).' }),
  'grpc-cert-file': Flags.string({ env: 'SQLD_GRPC_CERT_FILE', description: "Primary: the inter-node port's certificate (PEM)." }),
  'grpc-key-file': Flags.string({ env: 'SQLD_GRPC_KEY_FILE', description: "Primary: the inter-node port's private key (PEM)." }),
  'grpc-ca-cert-file': Flags.string({ env: 'SQLD_GRPC_CA_CERT_FILE', description: 'Primary: CA that signs the client certificates of replicas (PEM).' }),
  'primary-grpc-url': Flags.string({ env: 'SQLD_PRIMARY_GRPC_URL', description: "Run as a replica of the primary whose inter-node port is at this URL, e.g. http://127.0.0.1:5001." }),
  'primary-grpc-tls': Flags.boolean({ env: 'SQLD_PRIMARY_GRPC_TLS', default: false, description: 'Replica: connect to the primary over TLS (the primary is expected to present the name "sqld").' }),
  'primary-grpc-cert-file': Flags.string({ env: 'SQLD_PRIMARY_GRPC_CERT_FILE', description: "Replica: client certificate presented to the primary (PEM)." }),
  'primary-grpc-key-file': Flags.string({ env: 'SQLD_PRIMARY_GRPC_KEY_FILE', description: "Replica: the client certificate's private key (PEM)." }),
  'primary-grpc-ca-cert-file': Flags.string({ env: 'SQLD_PRIMARY_GRPC_CA_CERT_FILE', description: "Replica: CA that signs the primary's certificate (PEM)." }),
  'grpc-node-secret': Flags.string({
    env: 'LIBSQLCTL_GRPC_NODE_SECRET',
    description: 'Shared by a primary and its replicas: replicas that present it are trusted to vouch for the users whose writes they forward (like an mTLS client certificate).',
  }),
  'write-forward-timeout-ms': Flags.integer({
    env: 'LIBSQLCTL_WRITE_FORWARD_TIMEOUT_MS',
    description: 'Replica: a write forwarded to the primary fails when it gets no answer within this many ms (default 15000).',
  }),
  'extensions-path': Flags.string({
    char: 'e',
    env: 'SQLD_EXTENSIONS_PATH',
    description: 'Directory of trusted SQLite extensions, loaded into every connection: its trusted.lst lists "<sha256> <file name>" per line, checked at start-up. Without it extension loading is off.',
  }),
  'max-statement-duration-s': Flags.string({
    env: 'LIBSQLCTL_MAX_STATEMENT_DURATION_S',
    description: 'Seconds one client statement may run before it is interrupted (SQLITE_INTERRUPT; inside a transaction, the transaction is rolled back). 0 = no limit. Default 10.',
  }),
  'shutdown-timeout': Flags.integer({ env: 'SQLD_SHUTDOWN_TIMEOUT', default: 30, description: 'Seconds in-flight requests get to finish at shutdown.' }),
  ...connectionFlags,
  ...unsupportedSqldFlags,
};

/** Every environment variable the `serve` flags fall back to. */
export const serveFlagVariables: ReadonlySet<string> = new Set(Object.values(serveFlags).flatMap((f) => ('env' in f && typeof f.env === 'string' ? [f.env] : [])));

/**
 * The flag values `serve` gets when nothing is given (the oclif defaults above), for callers that
 * build a config without the CLI: tests, benchmarks.
 */
export function serveFlagDefaults(): ServeFlags {
  const defaults: Record<string, unknown> = {};
  for (const [name, flag] of Object.entries(serveFlags)) {
    if (flag.default !== undefined) defaults[name] = flag.default;
  }
  return defaults as unknown as ServeFlags;
}
