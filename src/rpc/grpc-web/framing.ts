/**
 * gRPC-web framing (spec sqld-wire.md §6.1; the public gRPC-web protocol): a body is a sequence of
 * frames `flag u8 ‖ length u32 BE ‖ payload`, flag 0x00 for a message and 0x80 for the trailer frame
 * whose payload is HTTP/1-style `name:value\r\n` lines. The `-text` content types carry the same
 * bytes in base64; a text stream may be a concatenation of separately padded base64 chunks (each
 * flush encoded on its own), which is what the official clients accept and what we send.
 */
import type { GrpcStatus } from '../service.js';

export const FLAG_DATA = 0x00;
export const FLAG_TRAILER = 0x80;
const FLAG_COMPRESSED = 0x01;
const HEADER_BYTES = 5;

/** 16 MiB: the default largest frame a decoder accepts. */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;

/** A body that is not well-formed gRPC-web (`oversize` tells the too-large case apart). */
export class GrpcWebFramingError extends Error {
  constructor(
    message: string,
    readonly oversize = false,
  ) {
    super(message);
    this.name = 'GrpcWebFramingError';
  }
}

/** The 5-byte header of a frame (writers send it and the payload without joining them). */
export function frameHeader(flag: number, length: number): Buffer {
  const head = Buffer.allocUnsafe(HEADER_BYTES);
  head[0] = flag;
  head.writeUInt32BE(length, 1);
  return head;
}

export function encodeDataFrame(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  out[0] = FLAG_DATA;
  out.writeUInt32BE(payload.length, 1);
  out.set(payload, HEADER_BYTES);
  return out;
}

const UNRESERVED = /^[\x20-\x24\x26-\x7e]*$/;

/** gRPC's encoding of `grpc-message`: bytes outside printable ASCII, and `%`, as %XX of their UTF-8. */
export function percentEncodeGrpcMessage(message: string): string {
  if (UNRESERVED.test(message)) return message;
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The inverse of percentEncodeGrpcMessage; malformed escapes are kept as they are. */
export function percentDecodeGrpcMessage(encoded: string): string {
  if (!encoded.includes('%')) return encoded;
  const bytes: number[] = [];
  for (let i = 0; i < encoded.length; i++) {
    const c = encoded.charCodeAt(i);
    const hex = encoded.slice(i + 1, i + 3);
    if (c === 0x25 && /^[0-9a-fA-F]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      for (const b of Buffer.from(encoded[i] ?? '', 'utf8')) bytes.push(b);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

export function encodeTrailerFrame(status: GrpcStatus, message?: string): Buffer {
  let text = `grpc-status:${status}\r\n`;
  if (message !== undefined && message !== '') text += `grpc-message:${percentEncodeGrpcMessage(message)}\r\n`;
  const payload = Buffer.from(text, 'latin1');
  return Buffer.concat([frameHeader(FLAG_TRAILER, payload.length), payload]);
}

/** Header lines of a trailer frame, names lower-cased; `grpc-message` percent-decoded. */
export function parseTrailers(payload: Uint8Array): Map<string, string> {
  const trailers = new Map<string, string>();
  for (const line of Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('latin1').split('\r\n')) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new GrpcWebFramingError(`malformed trailer line ${JSON.stringify(line)}`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    trailers.set(name, name === 'grpc-message' ? percentDecodeGrpcMessage(value) : value);
  }
  return trailers;
}

export type GrpcWebFrame = { readonly kind: 'data'; readonly payload: Buffer } | { readonly kind: 'trailer'; readonly payload: Buffer; readonly trailers: Map<string, string> };

/** Decodes base64 that may consist of separately padded chunks (`QQ==QkM=`), keeping partial input. */
export class Base64ChunkDecoder {
  private rest = '';

  push(text: string): Buffer {
    const input = this.rest + text.replace(/[\s]/g, '');
    if (!/^[A-Za-z0-9+/=_-]*$/.test(input)) throw new GrpcWebFramingError('invalid base64 in a gRPC-web-text body');
    const whole = input.length - (input.length % 4);
    this.rest = input.slice(whole);
    const quads = input.slice(0, whole);
    if (!quads.includes('=')) return Buffer.from(quads, 'base64');
    const parts: Buffer[] = [];
    let start = 0;
    for (let eq = quads.indexOf('='); eq !== -1; eq = quads.indexOf('=', start)) {
      const quadEnd = eq - (eq % 4) + 4;
      // Padding is one or two '=' ending a group of four.
      if (eq % 4 < 2 || quads.slice(eq, quadEnd) !== '='.repeat(quadEnd - eq)) throw new GrpcWebFramingError('invalid base64 padding in a gRPC-web-text body');
      parts.push(Buffer.from(quads.slice(start, quadEnd), 'base64'));
      start = quadEnd;
    }
    if (start < quads.length) parts.push(Buffer.from(quads.slice(start), 'base64'));
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** Whether input ended inside a 4-character group. */
  get partial(): boolean {
    return this.rest.length > 0;
  }
}

/** Decodes a whole `-text` body. */
export function decodeBase64Body(body: Buffer | string): Buffer {
  const dec = new Base64ChunkDecoder();
  const out = dec.push(typeof body === 'string' ? body : body.toString('latin1'));
  if (dec.partial) throw new GrpcWebFramingError('truncated base64 in a gRPC-web-text body');
  return out;
}

export interface GrpcWebDecoderOptions {
  /** Largest payload accepted (DEFAULT_MAX_FRAME_BYTES). */
  maxFrameBytes?: number;
  /** The input is base64 (`application/grpc-web-text`). */
  text?: boolean;
}

/**
 * Incremental frame decoder: push() chunks as they arrive and get the frames they complete. Errors
 * (compressed frames, unknown flags, oversize frames, data after the trailer) throw GrpcWebFramingError.
 */
export class GrpcWebDecoder {
  private readonly maxFrameBytes: number;
  private readonly base64: Base64ChunkDecoder | null;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private sawTrailer = false;

  constructor(opts: GrpcWebDecoderOptions = {}) {
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.base64 = opts.text ? new Base64ChunkDecoder() : null;
  }

  /** Bytes held back waiting for the rest of a frame. */
  get pendingBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer | string): GrpcWebFrame[] {
    const bytes = this.base64 ? this.base64.push(typeof chunk === 'string' ? chunk : chunk.toString('latin1')) : typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk;
    if (bytes.length > 0) {
      this.chunks.push(bytes);
      this.buffered += bytes.length;
    }
    const frames: GrpcWebFrame[] = [];
    for (;;) {
      const frame = this.next();
      if (!frame) break;
      frames.push(frame);
    }
    return frames;
  }

  /** The input ended: throws if it stopped inside a frame. */
  end(): void {
    if (this.buffered > 0 || this.base64?.partial) throw new GrpcWebFramingError(`gRPC-web body ends inside a frame (${this.buffered} bytes left over)`);
  }

  private next(): GrpcWebFrame | null {
    if (this.buffered < HEADER_BYTES) return null;
    const head = this.peek(HEADER_BYTES);
    const flag = head[0]!;
    const length = head.readUInt32BE(1);
    if (this.sawTrailer) throw new GrpcWebFramingError('gRPC-web frame after the trailer frame');
    if (flag & FLAG_COMPRESSED) throw new GrpcWebFramingError('compressed gRPC-web frame, but no compression was negotiated');
    if (flag !== FLAG_DATA && flag !== FLAG_TRAILER) throw new GrpcWebFramingError(`unknown gRPC-web frame flag 0x${flag.toString(16)}`);
    if (length > this.maxFrameBytes) throw new GrpcWebFramingError(`gRPC-web frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes}`, true);
    if (this.buffered < HEADER_BYTES + length) return null;
    this.take(HEADER_BYTES);
    const payload = this.take(length);
    if (flag === FLAG_TRAILER) {
      this.sawTrailer = true;
      return { kind: 'trailer', payload, trailers: parseTrailers(payload) };
    }
    return { kind: 'data', payload };
  }

  /** The first n buffered bytes, without consuming them. */
  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    for (const c of this.chunks) {
      const k = Math.min(c.length, n - filled);
      c.copy(out, filled, 0, k);
      filled += k;
      if (filled === n) break;
    }
    return out;
  }

  /** Consumes n bytes: a view when they lie in one chunk, else one copy. */
  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0];
    if (n === 0 || !first) return Buffer.alloc(0);
    if (first.length >= n) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - filled);
      c.copy(out, filled, 0, k);
      filled += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }
}

const GRPC_WEB_TYPES: Record<string, { text: boolean }> = {
  'application/grpc-web': { text: false },
  'application/grpc-web+proto': { text: false },
  'application/grpc-web-text': { text: true },
  'application/grpc-web-text+proto': { text: true },
};

/** Recognises the four gRPC-web content types (parameters ignored, any case); null for anything else. */
export function parseGrpcWebContentType(contentType: string | undefined | null): { text: boolean } | null {
  if (!contentType) return null;
  const essence = contentType.split(';', 1)[0]!.trim().toLowerCase();
  return GRPC_WEB_TYPES[essence] ?? null;
}
