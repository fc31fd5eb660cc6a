import type { CryptoKey } from 'jose';
import { ConfigError } from '../../errors.js';

type Jose = typeof import('jose');
let jose: Promise<Jose> | null = null;

/** jose, loaded on first use: a server without JWT keys never loads it (start-up, memory). */
export function loadJose(): Promise<Jose> {
  jose ??= import('jose');
  return jose;
}

/** One Ed25519 public key able to verify `EdDSA` JWTs, imported once at configuration time. */
export interface JwtKey {
  readonly key: CryptoKey;
  /** Where it came from: a `PUBLIC KEY` PEM block or a raw base64url key. */
  readonly format: 'pem' | 'raw';
}

const ED25519_KEY_BYTES = 32;
const PEM_BLOCK = /-----BEGIN ([^\r\n]*?)-----([\s\S]*?)-----END ([^\r\n]*?)-----/g;
const STD_BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const URL_BASE64_NO_PAD = /^[A-Za-z0-9_-]+$/;

function keyError(message: string, cause?: unknown, hint?: string): ConfigError {
  return new ConfigError('CONFIG_JWT_KEY', message, { cause, hint });
}

interface PemBlock {
  tag: string;
  base64: string;
}

/** Splits concatenated PEM blocks; any malformed block fails the whole text (as sqld does). */
function parsePemBlocks(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  for (const match of text.matchAll(PEM_BLOCK)) {
    const [, begin = '', body = '', end = ''] = match;
    const base64 = body.replace(/\s+/g, '');
    if (begin !== end || base64.length === 0 || base64.length % 4 !== 0 || !STD_BASE64.test(base64)) {
      throw keyError('Could not parse many certificates from PEM');
    }
    blocks.push({ tag: begin, base64 });
  }
  if (blocks.length === 0) throw keyError('Could not parse many certificates from PEM');
  return blocks;
}

function toSpkiPem(base64: string): string {
  const lines = base64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN PUBLIC KEY-----\n${lines.join('\n')}\n-----END PUBLIC KEY-----\n`;
}

async function importPemBlock(block: PemBlock): Promise<JwtKey> {
  switch (block.tag) {
    case 'PUBLIC KEY':
      try {
        const key = await (await loadJose()).importSPKI(toSpkiPem(block.base64), 'EdDSA', { extractable: false });
        return { key, format: 'pem' };
      } catch (err) {
        throw keyError('Could not decode Ed25519 public key from PEM', err);
      }
    case 'PRIVATE KEY':
      throw keyError(
        'Received a private key, but a public key is expected',
        undefined,
        'derive the public key, e.g. `openssl pkey -in key.pem -pubout`',
      );
    default:
      throw keyError('Key is in unsupported PEM format', undefined, 'expected `-----BEGIN PUBLIC KEY-----` blocks (Ed25519)');
  }
}

async function importRawKey(text: string): Promise<JwtKey> {
  const fail = (detail: string, cause?: unknown): ConfigError =>
    keyError(`Could not decode Ed25519 public key from base64: ${detail}`, cause);
  // Trailing newlines from key files are tolerated; anything else must be strict base64url.
  const encoded = text.trim();
  if (!URL_BASE64_NO_PAD.test(encoded)) throw fail('expected URL-safe base64 without padding');
  const bytes = Buffer.from(encoded, 'base64url');
  if (bytes.toString('base64url') !== encoded) throw fail('invalid base64 length or trailing bits');
  if (bytes.length !== ED25519_KEY_BYTES) {
    throw fail(`expected ${ED25519_KEY_BYTES} bytes, got ${bytes.length}`);
  }
  let imported: Awaited<ReturnType<Jose['importJWK']>>;
  try {
    imported = await (await loadJose()).importJWK({ kty: 'OKP', crv: 'Ed25519', x: encoded }, 'EdDSA', { extractable: false });
  } catch (err) {
    throw fail('not a valid Ed25519 public key', err);
  }
  if (imported instanceof Uint8Array) throw fail('not a valid Ed25519 public key');
  return { key: imported, format: 'raw' };
}

/**
 * Parses sqld's JWT key material: text starting with `-----BEGIN` is one or more PEM blocks, each
 * a `PUBLIC KEY` (SPKI Ed25519); anything else is exactly one raw 32-byte Ed25519 public key in
 * URL-safe base64 without padding. Throws `ConfigError` (`CONFIG_JWT_KEY`) with sqld's texts.
 */
export async function parseJwtKeys(text: string): Promise<JwtKey[]> {
  const body = text.trimStart();
  if (body.startsWith('-----BEGIN')) {
    const keys: JwtKey[] = [];
    for (const block of parsePemBlocks(body)) keys.push(await importPemBlock(block));
    return keys;
  }
  return [await importRawKey(body)];
}
