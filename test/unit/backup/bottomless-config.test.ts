/** LIBSQL_BOTTOMLESS_* into one typed config: defaults, bottomless' boolean words, the strict switch, errors with hints. */
import { describe, expect, it } from 'vitest';
import { readBottomlessEnv, resolveBottomlessConfig, type BottomlessEnv } from '../../../src/config/bottomless-config.js';
import { ConfigError } from '../../../src/errors.js';

function configError(env: BottomlessEnv, overrides?: { endpoint?: string; bucket?: string }): ConfigError {
  try {
    resolveBottomlessConfig(env, overrides);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('resolveBottomlessConfig', () => {
  it('defaults: AWS, bucket bottomless, gz, 32 uploads, CRC on', () => {
    const c = resolveBottomlessConfig({});
    expect(c).toMatchObject({ databaseId: '', compression: 'gz', batchIntervalMs: 15_000, batchMaxFrames: 10_000, parallelMax: 32, verifyCrc: true, skipSnapshot: false, skipShutdownUpload: false });
    expect(c.target).toEqual({ kind: 's3', bucket: 'bottomless', endpoint: null, region: null, credentials: null, maxAttempts: 10 });
  });

  it('trims values and takes an empty one for unset', () => {
    const c = resolveBottomlessConfig({ LIBSQL_BOTTOMLESS_BUCKET: '  ', LIBSQL_BOTTOMLESS_DATABASE_ID: ' abc ', LIBSQL_BOTTOMLESS_S3_PARALLEL_MAX: ' 4 ' });
    expect([c.target.bucket, c.databaseId, c.parallelMax]).toEqual(['bottomless', 'abc', 4]);
  });

  it.each([
    ['yes', true],
    ['TRUE', true],
    ['1', true],
    ['y', true],
    ['T', true],
    ['no', false],
    ['False', false],
    ['0', false],
    ['n', false],
    ['f', false],
  ])('bottomless boolean word %s', (word, value) => {
    expect(resolveBottomlessConfig({ LIBSQL_BOTTOMLESS_VERIFY_CRC: word, LIBSQL_BOTTOMLESS_SKIP_SNAPSHOT: word })).toMatchObject({ verifyCrc: value, skipSnapshot: value });
  });

  it('a word that is not one is an error naming the variable', () => {
    const err = configError({ LIBSQL_BOTTOMLESS_VERIFY_CRC: 'maybe' });
    expect(err.message).toBe('LIBSQL_BOTTOMLESS_VERIFY_CRC: expected a yes/no value, got `maybe`');
    expect(err.hint).toBeTruthy();
  });

  it('SKIP_SHUTDOWN_UPLOAD is strictly true or false', () => {
    expect(resolveBottomlessConfig({ LIBSQL_BOTTOMLESS_SKIP_SHUTDOWN_UPLOAD: 'true' }).skipShutdownUpload).toBe(true);
    expect(resolveBottomlessConfig({ LIBSQL_BOTTOMLESS_SKIP_SHUTDOWN_UPLOAD: 'false' }).skipShutdownUpload).toBe(false);
    expect(configError({ LIBSQL_BOTTOMLESS_SKIP_SHUTDOWN_UPLOAD: 'yes' }).message).toContain('expected true or false');
  });

  it('compression: gz/gzip, zstd, raw; anything else is refused', () => {
    expect(resolveBottomlessConfig({ LIBSQL_BOTTOMLESS_COMPRESSION: 'GZIP' }).compression).toBe('gz');
    expect(resolveBottomlessConfig({ LIBSQL_BOTTOMLESS_COMPRESSION: 'zstd' }).compression).toBe('zstd');
    expect(resolveBottomlessConfig({ LIBSQL_BOTTOMLESS_COMPRESSION: 'raw' }).compression).toBe('raw');
    const err = configError({ LIBSQL_BOTTOMLESS_COMPRESSION: 'xz' });
    expect(err.message).toContain('unknown compression kind `xz`');
    expect(err.hint).toContain('gz');
  });

  it('counts are whole numbers of at least 1', () => {
    expect(configError({ LIBSQL_BOTTOMLESS_S3_PARALLEL_MAX: '0' }).message).toContain('LIBSQL_BOTTOMLESS_S3_PARALLEL_MAX');
    expect(configError({ LIBSQL_BOTTOMLESS_BATCH_MAX_FRAMES: '1.5' }).message).toContain('whole number');
  });

  it('credentials come in pairs; with both (and a session token) they are static', () => {
    const c = resolveBottomlessConfig({ LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID: 'id', LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY: 'secret', LIBSQL_BOTTOMLESS_AWS_SESSION_TOKEN: 'tok', LIBSQL_BOTTOMLESS_AWS_DEFAULT_REGION: 'eu-west-1' });
    expect(c.target).toMatchObject({ kind: 's3', region: 'eu-west-1', credentials: { accessKeyId: 'id', secretAccessKey: 'secret', sessionToken: 'tok' } });
    expect(configError({ LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID: 'id' }).message).toBe('LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY: is not set, but its partner is');
    expect(configError({ LIBSQL_BOTTOMLESS_AWS_SECRET_ACCESS_KEY: 's' }).message).toContain('LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID');
  });

  it('a file:// endpoint is a local directory and needs no credentials; -e and -b win over the environment', () => {
    const c = resolveBottomlessConfig({ LIBSQL_BOTTOMLESS_ENDPOINT: 'http://ignored:9000', LIBSQL_BOTTOMLESS_BUCKET: 'envbucket', LIBSQL_BOTTOMLESS_AWS_ACCESS_KEY_ID: 'id' }, { endpoint: 'file:///var/backups/my%20dir', bucket: 'flagbucket' });
    expect(c.target).toEqual({ kind: 'local', dir: '/var/backups/my dir', bucket: 'flagbucket' });
    expect(configError({}, { endpoint: 'ftp://x' }).code).toBe('CONFIG_BOTTOMLESS_ENDPOINT');
    expect(configError({}, { endpoint: 'file:relative' }).code).toBe('CONFIG_BOTTOMLESS_ENDPOINT');
    expect(configError({ LIBSQL_BOTTOMLESS_BUCKET: 'a' }).message).toContain('is not a bucket name');
  });

  it('readBottomlessEnv keeps only its variables', () => {
    expect(readBottomlessEnv({ LIBSQL_BOTTOMLESS_BUCKET: 'b', SQLD_DB_PATH: 'x', PATH: '/bin' })).toEqual({ LIBSQL_BOTTOMLESS_BUCKET: 'b' });
  });
});
