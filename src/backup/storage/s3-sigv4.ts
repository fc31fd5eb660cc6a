/**
 * AWS Signature Version 4 for S3 requests without a body (GET, HEAD): the `authorization` header
 * of a request, from its method, path, query and headers. S3's rules: the path is URI-encoded once
 * (no normalisation), the payload hash is sent as `x-amz-content-sha256`. The signing key depends
 * only on the day, so it is kept for the day.
 */
import { createHash, createHmac } from 'node:crypto';

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** sha256 of an empty payload. */
export const EMPTY_PAYLOAD_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** RFC 3986 encoding as SigV4 wants it: everything but `A-Za-z0-9-._~` (and `/` in paths). */
export function uriEncode(value: string, keepSlash = false): string {
  const encoded = encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return keepSlash ? encoded.replace(/%2F/g, '/') : encoded;
}

/** `20130524T000000Z` */
export function amzDate(at: Date): string {
  return at.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

export interface SignInput {
  method: string;
  /** Already URI-encoded, as sent. */
  path: string;
  query: Readonly<Record<string, string>>;
  /** Lower-case names; must include `host`, `x-amz-date` and `x-amz-content-sha256`. */
  headers: Readonly<Record<string, string>>;
  payloadSha256: string;
}

/** The query string as sent and as signed: encoded names and values, sorted by name. */
export function canonicalQuery(query: Readonly<Record<string, string>>): string {
  return Object.entries(query)
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

export class SigV4Signer {
  private keyDay = '';
  private key: Buffer = Buffer.alloc(0);

  constructor(
    private readonly credentials: Credentials,
    private readonly region: string,
    private readonly service = 's3',
  ) {}

  /** The `authorization` header's value for a request whose `x-amz-date` header is `date`. */
  authorization(input: SignInput): string {
    const date = input.headers['x-amz-date'];
    if (date === undefined) throw new Error('x-amz-date must be set before signing');
    const day = date.slice(0, 8);
    const names = Object.keys(input.headers).sort();
    const canonicalHeaders = names.map((n) => `${n}:${input.headers[n]!.trim().replace(/\s+/g, ' ')}\n`).join('');
    const signedHeaders = names.join(';');
    const request = [input.method, input.path, canonicalQuery(input.query), canonicalHeaders, signedHeaders, input.payloadSha256].join('\n');
    const scope = `${day}/${this.region}/${this.service}/aws4_request`;
    const toSign = ['AWS4-HMAC-SHA256', date, scope, createHash('sha256').update(request).digest('hex')].join('\n');
    const signature = createHmac('sha256', this.signingKey(day)).update(toSign).digest('hex');
    return `AWS4-HMAC-SHA256 Credential=${this.credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
  }

  private signingKey(day: string): Buffer {
    if (day !== this.keyDay) {
      const hmac = (key: string | Buffer, data: string): Buffer => createHmac('sha256', key).update(data).digest();
      this.key = hmac(hmac(hmac(hmac(`AWS4${this.credentials.secretAccessKey}`, day), this.region), this.service), 'aws4_request');
      this.keyDay = day;
    }
    return this.key;
  }
}
