import { LibsqlctlError } from '../../../errors.js';
import { MAX_PROTOBUF_DEPTH } from '../nesting.js';

/**
 * The protobuf wire format, just what Hrana needs: varints (32-bit, 64-bit, zigzag), 64-bit
 * doubles and length-delimited fields. Hrana has no packed scalars, no groups and no fixed32.
 */
export const WireType = { varint: 0, fixed64: 1, delimited: 2, fixed32: 5 } as const;

/** Bytes that are not a well-formed message of the expected schema. */
export class ProtobufDecodeError extends LibsqlctlError {
  constructor(detail: string) {
    super('PROTOBUF_DECODE_ERROR', detail);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
/** Strings up to this many UTF-16 units take at most 127 UTF-8 bytes: a one-byte length. */
const SHORT_STRING = 42;

/**
 * Appends fields to a growing buffer. Nested messages are written in place: `begin` reserves one
 * byte for the length and `end` moves the body when the length needs more (bodies ≥ 128 bytes).
 */
export class ProtoWriter {
  private buf: Buffer;
  private pos = 0;
  private readonly open: number[] = [];

  constructor(initialSize = 256) {
    this.buf = Buffer.allocUnsafe(initialSize);
  }

  /** The bytes written so far (a view, valid until the writer is used again). */
  finish(): Buffer {
    if (this.open.length > 0) throw new Error('ProtoWriter: unterminated nested message');
    return this.buf.subarray(0, this.pos);
  }

  private ensure(extra: number): void {
    if (this.pos + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + extra) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** An unsigned integer below 2^53. */
  private varint(value: number): void {
    this.ensure(10);
    let v = value;
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
  }

  /** An unsigned integer below 2^64. */
  private varintBig(value: bigint): void {
    if (value < 0x20000000000000n) {
      this.varint(Number(value));
      return;
    }
    this.ensure(10);
    let v = value;
    while (v >= 0x80n) {
      this.buf[this.pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
  }

  private tag(field: number, wireType: number): void {
    this.varint(field * 8 + wireType);
  }

  uint32(field: number, value: number): void {
    this.tag(field, WireType.varint);
    this.varint(value >>> 0);
  }

  int32(field: number, value: number): void {
    this.tag(field, WireType.varint);
    // negative int32 values are sign-extended to 64 bits, as protobuf requires
    if (value >= 0) this.varint(value);
    else this.varintBig(BigInt.asUintN(64, BigInt(value | 0)));
  }

  bool(field: number, value: boolean): void {
    this.tag(field, WireType.varint);
    this.varint(value ? 1 : 0);
  }

  /** uint64 from a non-negative safe integer or a decimal string. */
  uint64(field: number, value: number | string): void {
    this.tag(field, WireType.varint);
    if (typeof value === 'number') this.varint(value);
    else if (value.length <= 15) this.varint(Number(value));
    else this.varintBig(BigInt.asUintN(64, BigInt(value)));
  }

  /** sint64 (zigzag) from a safe integer or a decimal string. */
  sint64(field: number, value: number | string): void {
    this.tag(field, WireType.varint);
    if (typeof value === 'string' ? value.length <= 15 : Math.abs(value) < 2 ** 52) {
      const n = Number(value);
      this.varint(n >= 0 ? n * 2 : -n * 2 - 1);
      return;
    }
    const n = BigInt(value);
    this.varintBig(n >= 0n ? n << 1n : ((-n) << 1n) - 1n);
  }

  double(field: number, value: number): void {
    this.tag(field, WireType.fixed64);
    this.ensure(8);
    this.buf.writeDoubleLE(value, this.pos);
    this.pos += 8;
  }

  string(field: number, value: string): void {
    this.tag(field, WireType.delimited);
    if (value.length <= SHORT_STRING) {
      this.ensure(1 + value.length * 3);
      const n = this.buf.write(value, this.pos + 1, 'utf8');
      this.buf[this.pos] = n;
      this.pos += 1 + n;
      return;
    }
    const n = Buffer.byteLength(value);
    this.varint(n);
    this.ensure(n);
    this.buf.write(value, this.pos, n, 'utf8');
    this.pos += n;
  }

  bytes(field: number, value: Uint8Array): void {
    this.tag(field, WireType.delimited);
    this.varint(value.length);
    this.ensure(value.length);
    this.buf.set(value, this.pos);
    this.pos += value.length;
  }

  /** An empty nested message (`Value.Null`, `HelloOkMsg`, ...). */
  empty(field: number): void {
    this.tag(field, WireType.delimited);
    this.varint(0);
  }

  /** Starts a nested message in `field`, or (null) a bare length-delimited message. */
  begin(field: number | null): void {
    if (field !== null) this.tag(field, WireType.delimited);
    this.ensure(1);
    this.open.push(this.pos);
    this.pos += 1;
  }

  end(): void {
    const start = this.open.pop();
    if (start === undefined) throw new Error('ProtoWriter: end() without begin()');
    const len = this.pos - start - 1;
    if (len < 0x80) {
      this.buf[start] = len;
      return;
    }
    let extra = 1;
    for (let v = len >>> 14; v > 0; v >>>= 7) extra++;
    this.ensure(extra);
    this.buf.copyWithin(start + 1 + extra, start + 1, this.pos);
    let v = len;
    let p = start;
    while (v >= 0x80) {
      this.buf[p++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.buf[p] = v;
    this.pos += extra;
  }
}

/**
 * Reads the fields of one message: `while (r.more()) switch (r.field()) {...; default: r.skip()}`.
 * `depth` counts the messages enclosing this one; nesting beyond MAX_PROTOBUF_DEPTH is a decode error.
 */
export class ProtoReader {
  private pos: number;
  private wireType = -1;

  constructor(
    private readonly buf: Uint8Array,
    start = 0,
    private readonly limit = buf.length,
    private readonly depth = 0,
  ) {
    this.pos = start;
  }

  more(): boolean {
    return this.pos < this.limit;
  }

  /** Reads the next field's tag and returns its number. */
  field(): number {
    const key = this.rawVarint32();
    const field = key >>> 3;
    this.wireType = key & 7;
    if (field === 0) throw new ProtobufDecodeError('invalid field number 0');
    return field;
  }

  /** Skips the value of the field just read (unknown fields are ignored). */
  skip(): void {
    switch (this.wireType) {
      case WireType.varint:
        this.rawVarint64();
        return;
      case WireType.fixed64:
        this.advance(8);
        return;
      case WireType.delimited:
        this.advance(this.length());
        return;
      case WireType.fixed32:
        this.advance(4);
        return;
      default:
        throw new ProtobufDecodeError(`unsupported wire type ${this.wireType}`);
    }
  }

  uint32(): number {
    this.expect(WireType.varint);
    return this.rawVarint32() >>> 0;
  }

  int32(): number {
    this.expect(WireType.varint);
    return this.rawVarint32() | 0;
  }

  bool(): boolean {
    this.expect(WireType.varint);
    const [lo, hi] = this.rawVarint64();
    return lo !== 0 || hi !== 0;
  }

  uint64(): bigint {
    this.expect(WireType.varint);
    const [lo, hi] = this.rawVarint64();
    return hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
  }

  sint64(): bigint {
    const z = this.uint64();
    return (z >> 1n) ^ -(z & 1n);
  }

  double(): number {
    this.expect(WireType.fixed64);
    const at = this.advance(8);
    return Buffer.from(this.buf.buffer, this.buf.byteOffset + at, 8).readDoubleLE(0);
  }

  bytes(): Uint8Array {
    this.expect(WireType.delimited);
    const len = this.length();
    const at = this.advance(len);
    return this.buf.subarray(at, at + len);
  }

  string(): string {
    try {
      return utf8.decode(this.bytes());
    } catch (err) {
      if (err instanceof ProtobufDecodeError) throw err;
      throw new ProtobufDecodeError('invalid string value: data is not UTF-8 encoded');
    }
  }

  /** A reader over the nested message in the field just read. */
  message(): ProtoReader {
    this.expect(WireType.delimited);
    if (this.depth >= MAX_PROTOBUF_DEPTH) throw new ProtobufDecodeError('recursion limit reached');
    const len = this.length();
    const at = this.advance(len);
    return new ProtoReader(this.buf, at, at + len, this.depth + 1);
  }

  private expect(wireType: number): void {
    if (this.wireType !== wireType) throw new ProtobufDecodeError(`invalid wire type ${this.wireType} (expected ${wireType})`);
  }

  private length(): number {
    const [lo, hi] = this.rawVarint64();
    if (hi !== 0 || lo > this.limit - this.pos) throw new ProtobufDecodeError('buffer underflow');
    return lo;
  }

  /** Moves past `n` bytes and returns where they start. */
  private advance(n: number): number {
    const at = this.pos;
    if (n > this.limit - at) throw new ProtobufDecodeError('buffer underflow');
    this.pos = at + n;
    return at;
  }

  private byte(): number {
    if (this.pos >= this.limit) throw new ProtobufDecodeError('buffer underflow');
    return this.buf[this.pos++] ?? 0;
  }

  /** A varint's low 32 bits (all 10 bytes of a sign-extended int32 are consumed). */
  private rawVarint32(): number {
    return this.rawVarint64()[0];
  }

  /** A varint as its low and high 32-bit halves (unsigned). */
  private rawVarint64(): [number, number] {
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      const b = this.byte();
      if (i < 4) lo |= (b & 0x7f) << (7 * i);
      else if (i === 4) {
        lo |= (b & 0x0f) << 28;
        hi |= (b & 0x7f) >>> 4;
      } else hi |= (b & 0x7f) << (7 * i - 32);
      if (b < 0x80) return [lo >>> 0, hi >>> 0];
    }
    throw new ProtobufDecodeError('invalid varint');
  }
}
