import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * `--admin-auth-key` (spec §9): the `authorization` header must be `Basic <KEY>` — the scheme in any
 * case, any whitespace after it, the key compared literally (not base64-decoded). The comparison
 * takes the same time whatever the header holds (both sides hashed to equal length first).
 */
export class AdminKeyCheck {
  private readonly expected: Buffer;

  constructor(key: string) {
    this.expected = digest(key);
  }

  allows(header: string | string[] | undefined): boolean {
    const value = Array.isArray(header) ? header[0] : header;
    const m = value === undefined ? null : /^\s*(\S+)\s+(.*?)\s*$/s.exec(value);
    const scheme = m?.[1] ?? '';
    const token = m?.[2] ?? '';
    const match = timingSafeEqual(digest(token), this.expected);
    return scheme.toLowerCase() === 'basic' && match;
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
