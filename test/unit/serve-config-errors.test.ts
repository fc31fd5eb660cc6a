/** `serve` configuration mistakes around the JWT key: each says what is wrong and why, with a hint. */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveServeConfig } from '../../src/config/serve-config.js';
import { serveFlagDefaults } from '../../src/config/serve-flags.js';
import { ConfigError } from '../../src/errors.js';
import { tempDir } from '../helpers/test-server.js';

const dir = tempDir();
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function refusal(flags: Record<string, unknown>, env: Record<string, string> = {}): Promise<ConfigError> {
  try {
    await resolveServeConfig({ ...serveFlagDefaults(), ...flags }, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('the configuration was accepted');
}

describe('JWT key configuration errors', () => {
  it('a missing key file, and a directory given as one, name the path and the reason', async () => {
    const missing = path.join(dir, 'missing.pem');
    const a = await refusal({ 'auth-jwt-key-file': missing });
    expect(a.message).toBe(`--auth-jwt-key-file: cannot read ${missing}: no such file or directory (ENOENT)`);
    expect(a.hint).toMatch(/readable file/);
    const b = await refusal({ 'auth-jwt-key-file': dir });
    expect(b.message).toBe(`--auth-jwt-key-file: cannot read ${dir}: it is a directory (EISDIR)`);
  });

  it('an empty key file, or an empty SQLD_AUTH_JWT_KEY, says it is empty (not a padding message)', async () => {
    const empty = path.join(dir, 'empty.pem');
    fs.writeFileSync(empty, '\n');
    const a = await refusal({ 'auth-jwt-key-file': empty });
    expect(a.message).toBe(`--auth-jwt-key-file ${empty}: no key in it (it is empty)`);
    expect(a.hint).toMatch(/Ed25519 public key/);
    const b = await refusal({}, { SQLD_AUTH_JWT_KEY: '  ' });
    expect(b.message).toBe('SQLD_AUTH_JWT_KEY: no key in it (it is empty)');
  });
});
