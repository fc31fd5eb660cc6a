/**
 * bottomless' environment (`LIBSQL_BOTTOMLESS_*`, spec bottomless-format.md §2.1) validated once into
 * a typed config, shared by `serve --enable-bottomless-replication` and `libsqlctl bottomless`.
 * Values are trimmed and an empty value counts as unset, as in bottomless.
 */
import { ConfigError } from '../errors.js';
import type { Compression } from '../backup/format/layout.js';
import { parseEndpoint, type StorageConfig } from '../backup/storage/endpoint.js';

/** The variables, by their names. */
export type BottomlessEnv = Partial<Record<(typeof BOTTOMLESS_VARIABLES)[number], string>>;

export const BOTTOMLESS_VARIABLES = [
  'LIBSQL_BOTTOMLESS_ENDPOINT',
  'LIBSQL_BOTTOMLESS_BUCKET',
  'LIBSQL_BOTTOMLESS_DATABASE_ID',
  'LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID',
  'LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY',
  'LIBSQL_BOTTOMLESS_AWS_SESSION_TOKEN',
  'LIBSQL_BOTTOMLESS_AWS_DEFAULT_REGION',
  'LIBSQL_BOTTOMLESS_BATCH_INTERVAL_SECS',
  'LIBSQL_BOTTOMLESS_BATCH_MAX_FRAMES',
  'LIBSQL_BOTTOMLESS_S3_PARALLEL_MAX',
  'LIBSQL_BOTTOMLESS_S3_MAX_RETRIES',
  'LIBSQL_BOTTOMLESS_COMPRESSION',
  'LIBSQL_BOTTOMLESS_VERIFY_CRC',
  'LIBSQL_BOTTOMLESS_SKIP_SNAPSHOT',
  'LIBSQL_BOTTOMLESS_SKIP_SHUTDOWN_UPLOAD',
] as const;

export interface BottomlessConfig {
  /** Where backups go: a local directory (`file:///path`) or S3 (an `http(s)://` endpoint, or AWS when unset). */
  target: StorageConfig;
  /** `LIBSQL_BOTTOMLESS_DATABASE_ID`; '' when unset (sqld then names databases `ns-:<namespace>`). */
  databaseId: string;
  /** What we write (`gz` by default; bottomless defaults to zstd). Every kind is read. */
  compression: Compression;
  /** Longest time committed frames wait before a batch is cut (`_BATCH_INTERVAL_SECS`, 15 s). */
  batchIntervalMs: number;
  /** Frames per batch before it is cut early (`_BATCH_MAX_FRAMES`, 10 000); a bigger transaction is one batch. */
  batchMaxFrames: number;
  /** Concurrent uploads (`_S3_PARALLEL_MAX`, 32). */
  parallelMax: number;
  /** Restore verifies the WAL checksum chain (`_VERIFY_CRC`, true). */
  verifyCrc: boolean;
  /** No snapshot on checkpoints, only where one is required (`_SKIP_SNAPSHOT`). */
  skipSnapshot: boolean;
  /** Graceful shutdown does not wait for uploads (`_SKIP_SHUTDOWN_UPLOAD`). */
  skipShutdownUpload: boolean;
}

const DEFAULT_BUCKET = 'bottomless';

function value(env: BottomlessEnv, name: keyof BottomlessEnv): string | undefined {
  const v = env[name]?.trim();
  return v === undefined || v === '' ? undefined : v;
}

function bad(name: string, message: string, hint: string): ConfigError {
  return new ConfigError('CONFIG_BOTTOMLESS', `${name}: ${message}`, { hint });
}

/** bottomless' boolean words (yes/true/1/y/t, no/false/0/n/f, any case). */
function parseBool(env: BottomlessEnv, name: keyof BottomlessEnv, fallback: boolean, strict = false): boolean {
  const v = value(env, name);
  if (v === undefined) return fallback;
  const lower = v.toLowerCase();
  const yes = strict ? ['true'] : ['yes', 'true', '1', 'y', 't'];
  const no = strict ? ['false'] : ['no', 'false', '0', 'n', 'f'];
  if (yes.includes(lower)) return true;
  if (no.includes(lower)) return false;
  throw bad(name, `expected ${strict ? 'true or false' : 'a yes/no value'}, got \`${v}\``, `set it to ${strict ? 'true or false' : 'true or false (also yes/no, 1/0)'}, or unset it`);
}

function parseCount(env: BottomlessEnv, name: keyof BottomlessEnv, fallback: number, min = 1): number {
  const v = value(env, name);
  if (v === undefined) return fallback;
  if (!/^\d+$/.test(v) || Number(v) < min || !Number.isSafeInteger(Number(v))) {
    throw bad(name, `expected a whole number of at least ${min}, got \`${v}\``, `e.g. ${name}=${fallback}`);
  }
  return Number(v);
}

/** `raw`, `gz`/`gzip` or `zstd` (bottomless' names). */
export function parseCompressionSetting(text: string, name = 'LIBSQL_BOTTOMLESS_COMPRESSION'): Compression {
  const lower = text.trim().toLowerCase();
  if (lower === 'gz' || lower === 'gzip') return 'gz';
  if (lower === 'zstd' || lower === 'raw') return lower;
  throw bad(name, `unknown compression kind \`${text}\``, 'use gz (the default), zstd or raw');
}

/** The endpoint (`file:///path`, `http(s)://…`, or AWS when unset), the bucket and S3's settings. */
function parseTarget(env: BottomlessEnv, endpointOverride?: string, bucketOverride?: string): StorageConfig {
  const bucket = bucketOverride?.trim() || value(env, 'LIBSQL_BOTTOMLESS_BUCKET') || DEFAULT_BUCKET;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{2,254}$/.test(bucket)) {
    throw bad('LIBSQL_BOTTOMLESS_BUCKET', `\`${bucket}\` is not a bucket name`, 'use letters, digits, dots and dashes (at least 3 characters)');
  }
  const endpoint = parseEndpoint(endpointOverride?.trim() || value(env, 'LIBSQL_BOTTOMLESS_ENDPOINT'));
  if (endpoint.kind === 'local') return { kind: 'local', dir: endpoint.dir, bucket };
  const keyId = value(env, 'LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID');
  const secret = value(env, 'LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY');
  if ((keyId === undefined) !== (secret === undefined)) {
    const missing = keyId === undefined ? 'LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID' : 'LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY';
    throw bad(missing, 'is not set, but its partner is', 'set both, or neither (then the AWS SDK finds credentials itself)');
  }
  const token = value(env, 'LIBSQL_BOTTOMLESS_AWS_SESSION_TOKEN');
  return {
    kind: 's3',
    bucket,
    endpoint: endpoint.endpoint,
    region: value(env, 'LIBSQL_BOTTOMLESS_AWS_DEFAULT_REGION') ?? null,
    credentials: keyId !== undefined && secret !== undefined ? { accessKeyId: keyId, secretAccessKey: secret, ...(token ? { sessionToken: token } : {}) } : null,
    maxAttempts: parseCount(env, 'LIBSQL_BOTTOMLESS_S3_MAX_RETRIES', 10),
  };
}

/** Reads and checks everything once; `overrides` are the CLI's `-e`/`-b`. */
export function resolveBottomlessConfig(env: BottomlessEnv, overrides: { endpoint?: string; bucket?: string } = {}): BottomlessConfig {
  const compression = value(env, 'LIBSQL_BOTTOMLESS_COMPRESSION');
  return {
    target: parseTarget(env, overrides.endpoint, overrides.bucket),
    databaseId: value(env, 'LIBSQL_BOTTOMLESS_DATABASE_ID') ?? '',
    compression: compression === undefined ? 'gz' : parseCompressionSetting(compression),
    batchIntervalMs: parseCount(env, 'LIBSQL_BOTTOMLESS_BATCH_INTERVAL_SECS', 15) * 1000,
    batchMaxFrames: parseCount(env, 'LIBSQL_BOTTOMLESS_BATCH_MAX_FRAMES', 10_000),
    parallelMax: parseCount(env, 'LIBSQL_BOTTOMLESS_S3_PARALLEL_MAX', 32),
    verifyCrc: parseBool(env, 'LIBSQL_BOTTOMLESS_VERIFY_CRC', true),
    skipSnapshot: parseBool(env, 'LIBSQL_BOTTOMLESS_SKIP_SNAPSHOT', false),
    skipShutdownUpload: parseBool(env, 'LIBSQL_BOTTOMLESS_SKIP_SHUTDOWN_UPLOAD', false, true),
  };
}

/** The variables from a process environment. */
export function readBottomlessEnv(env: NodeJS.ProcessEnv = process.env): BottomlessEnv {
  const out: BottomlessEnv = {};
  for (const name of BOTTOMLESS_VARIABLES) if (env[name] !== undefined) out[name] = env[name];
  return out;
}
