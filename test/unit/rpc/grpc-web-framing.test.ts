import { describe, expect, it } from 'vitest';
import {
  Base64ChunkDecoder,
  decodeBase64Body,
  encodeDataFrame,
  encodeTrailerFrame,
  GrpcWebDecoder,
  GrpcWebFramingError,
  parseGrpcWebContentType,
  parseTrailers,
  percentDecodeGrpcMessage,
  percentEncodeGrpcMessage,
  type GrpcWebFrame,
} from '../../../src/rpc/grpc-web/framing.js';
import { GrpcStatus } from '../../../src/rpc/service.js';

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

/** Frames as comparable plain values. */
function plain(frames: GrpcWebFrame[]): unknown[] {
  return frames.map((f) => (f.kind === 'data' ? { data: hex(f.payload) } : { trailers: Object.fromEntries(f.trailers) }));
}

const payloads = [Buffer.alloc(0), Buffer.from([0x2a]), Buffer.alloc(300, 7), Buffer.from('abc')];
const stream = Buffer.concat([...payloads.map(encodeDataFrame), encodeTrailerFrame(GrpcStatus.NOT_FOUND, 'no such thing: 100% gone')]);
const expected = [...payloads.map((p) => ({ data: hex(p) })), { trailers: { 'grpc-status': '5', 'grpc-message': 'no such thing: 100% gone' } }];

describe('gRPC-web frames', () => {
  it('encodes data and trailer frames byte for byte', () => {
    expect(hex(encodeDataFrame(Buffer.from([1, 2, 3])))).toBe('0000000003010203');
    expect(hex(encodeDataFrame(Buffer.alloc(0)))).toBe('0000000000');
    const ok = encodeTrailerFrame(GrpcStatus.OK);
    expect(hex(ok.subarray(0, 5))).toBe('800000000f');
    expect(ok.subarray(5).toString('latin1')).toBe('grpc-status:0\r\n');
    const err = encodeTrailerFrame(GrpcStatus.FAILED_PRECONDITION, 'NO_HELLO');
    expect(err.subarray(5).toString('latin1')).toBe('grpc-status:9\r\ngrpc-message:NO_HELLO\r\n');
    expect(err.readUInt32BE(1)).toBe(err.length - 5);
  });

  it('percent-encodes grpc-message like gRPC (non-printable, non-ASCII and %)', () => {
    expect(percentEncodeGrpcMessage('plain text: ok')).toBe('plain text: ok');
    expect(percentEncodeGrpcMessage('héllo 100%\n')).toBe('h%C3%A9llo 100%25%0A');
    for (const s of ['héllo 100%\n', '日本語', '%%41', 'tab\there', '']) expect(percentDecodeGrpcMessage(percentEncodeGrpcMessage(s))).toBe(s);
    expect(percentDecodeGrpcMessage('bad %zz escape %4')).toBe('bad %zz escape %4');
    const trailer = encodeTrailerFrame(GrpcStatus.INTERNAL, 'ünïcode\r\nline');
    expect(trailer.subarray(5).toString('latin1')).toBe('grpc-status:13\r\ngrpc-message:%C3%BCn%C3%AFcode%0D%0Aline\r\n');
    expect(parseTrailers(trailer.subarray(5)).get('grpc-message')).toBe('ünïcode\r\nline');
  });

  it('parses trailer lines with or without a space, any case', () => {
    const t = parseTrailers(Buffer.from('Grpc-Status: 3\r\ngrpc-message:bad%20thing\r\nx-extra:1\r\n'));
    expect(Object.fromEntries(t)).toStrictEqual({ 'grpc-status': '3', 'grpc-message': 'bad thing', 'x-extra': '1' });
    expect(() => parseTrailers(Buffer.from('no colon here\r\n'))).toThrow(GrpcWebFramingError);
  });

  it('decodes a stream in one chunk, split at every byte boundary, and byte by byte', () => {
    const one = new GrpcWebDecoder();
    expect(plain(one.push(stream))).toStrictEqual(expected);
    one.end();
    for (let cut = 0; cut <= stream.length; cut++) {
      const dec = new GrpcWebDecoder();
      const frames = [...dec.push(stream.subarray(0, cut)), ...dec.push(stream.subarray(cut))];
      expect(plain(frames)).toStrictEqual(expected);
      dec.end();
    }
    const dec = new GrpcWebDecoder();
    const frames: GrpcWebFrame[] = [];
    for (const b of stream) frames.push(...dec.push(Buffer.from([b])));
    expect(plain(frames)).toStrictEqual(expected);
    expect(dec.pendingBytes).toBe(0);
  });

  it('reports frames as soon as they are complete', () => {
    const dec = new GrpcWebDecoder();
    const first = encodeDataFrame(Buffer.from('first'));
    expect(dec.push(first.subarray(0, 7))).toStrictEqual([]);
    expect(plain(dec.push(Buffer.concat([first.subarray(7), encodeDataFrame(Buffer.from('x')).subarray(0, 2)])))).toStrictEqual([{ data: hex(Buffer.from('first')) }]);
    expect(dec.pendingBytes).toBe(2);
    expect(() => dec.end()).toThrow(/ends inside a frame/);
  });

  it('refuses oversize, compressed and unknown frames, and frames after the trailer', () => {
    const big = new GrpcWebDecoder({ maxFrameBytes: 10 });
    // The header alone is enough to refuse: the payload need not arrive.
    const header = encodeDataFrame(Buffer.alloc(11)).subarray(0, 5);
    let caught: unknown;
    try {
      big.push(header);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(GrpcWebFramingError);
    expect((caught as GrpcWebFramingError).oversize).toBe(true);
    expect(() => new GrpcWebDecoder({ maxFrameBytes: 10 }).push(encodeDataFrame(Buffer.alloc(10)))).not.toThrow();
    expect(new GrpcWebDecoder().push(Buffer.from('0000000000', 'hex'))).toHaveLength(1);
    expect(() => new GrpcWebDecoder().push(Buffer.from('0100000001ff', 'hex'))).toThrow(/compressed/);
    expect(() => new GrpcWebDecoder().push(Buffer.from('8100000000', 'hex'))).toThrow(/compressed/);
    expect(() => new GrpcWebDecoder().push(Buffer.from('0200000000', 'hex'))).toThrow(/unknown gRPC-web frame flag 0x2/);
    expect(() => new GrpcWebDecoder().push(Buffer.concat([encodeTrailerFrame(GrpcStatus.OK), encodeDataFrame(Buffer.from('x'))]))).toThrow(/after the trailer/);
    const defaults = new GrpcWebDecoder();
    expect(() => defaults.push(Buffer.from('0001000001', 'hex'))).toThrow(/exceeds the limit of 16777216/);
  });
});

describe('gRPC-web-text (base64)', () => {
  it('decodes one base64 body and separately padded chunks', () => {
    const dec = new GrpcWebDecoder({ text: true });
    expect(plain(dec.push(stream.toString('base64')))).toStrictEqual(expected);
    dec.end();
    // Each frame encoded on its own, as streaming servers flush them.
    const chunked = [...payloads.map((p) => encodeDataFrame(p).toString('base64')), encodeTrailerFrame(GrpcStatus.NOT_FOUND, 'no such thing: 100% gone').toString('base64')].join('');
    expect(chunked).toMatch(/=.+/); // padding inside the body
    const dec2 = new GrpcWebDecoder({ text: true });
    expect(plain(dec2.push(chunked))).toStrictEqual(expected);
    dec2.end();
  });

  it('decodes a chunked text body split at every character boundary', () => {
    const chunked = [...payloads.map((p) => encodeDataFrame(p).toString('base64')), encodeTrailerFrame(GrpcStatus.NOT_FOUND, 'no such thing: 100% gone').toString('base64')].join('');
    for (let cut = 0; cut <= chunked.length; cut++) {
      const dec = new GrpcWebDecoder({ text: true });
      const frames = [...dec.push(chunked.slice(0, cut)), ...dec.push(Buffer.from(chunked.slice(cut), 'latin1'))];
      expect(plain(frames)).toStrictEqual(expected);
      dec.end();
    }
  });

  it('decodes whole bodies and refuses broken base64', () => {
    expect(decodeBase64Body('QQ==QkM=').toString()).toBe('ABC');
    expect(decodeBase64Body(Buffer.from('QUJD\r\nREVG')).toString()).toBe('ABCDEF');
    expect(decodeBase64Body('').length).toBe(0);
    expect(() => decodeBase64Body('QUJ')).toThrow(/truncated/);
    expect(() => decodeBase64Body('Q===')).toThrow(/padding/);
    expect(() => decodeBase64Body('QQ=A')).toThrow(/padding/);
    expect(() => decodeBase64Body('QU*D')).toThrow(/invalid base64/);
    const dec = new Base64ChunkDecoder();
    expect(dec.push('QU').length).toBe(0);
    expect(dec.partial).toBe(true);
    expect(dec.push('JD').toString()).toBe('ABC');
    expect(dec.partial).toBe(false);
    expect(() => new GrpcWebDecoder({ text: true }).end()).not.toThrow();
    const partial = new GrpcWebDecoder({ text: true });
    partial.push('AA');
    expect(() => partial.end()).toThrow(GrpcWebFramingError);
  });
});

describe('content types', () => {
  it.each([
    ['application/grpc-web', false],
    ['application/grpc-web+proto', false],
    ['application/grpc-web-text', true],
    ['application/grpc-web-text+proto', true],
    ['Application/GRPC-Web+Proto', false],
    ['application/grpc-web-text; charset=utf-8', true],
    [' application/grpc-web ;foo=bar', false],
  ])('%s is gRPC-web (text: %s)', (ct, text) => {
    expect(parseGrpcWebContentType(ct)).toStrictEqual({ text });
  });

  it.each(['application/grpc', 'application/grpc+proto', 'application/grpc-web+json', 'application/json', 'text/plain', '', undefined, null])('%s is not', (ct) => {
    expect(parseGrpcWebContentType(ct)).toBeNull();
  });
});
