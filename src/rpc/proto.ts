/**
 * Encoders and decoders of the gRPC messages (src/rpc/messages.ts), built with protobufjs from our
 * .proto files in proto/ (shipped with the package, two levels above this module in src/ and dist/).
 *
 * protobufjs parses the schema and does the wire work; a conversion plan per message type, derived
 * from the reflected schema, maps its objects to messages.ts shapes: 64-bit integers become bigint,
 * fields with presence (proto3 `optional`, message fields) are absent unless they were on the wire,
 * oneofs become tagged objects, and a message that is nothing but one oneof (QueryResult, Cond,
 * RowValue, RespStep, DescribeResult) is that tagged object itself.
 *
 * Frame and Frames (the replication hot path) are encoded by hand: one allocation of the exact size,
 * and each frame's data copied once. Decoded `bytes` fields are views into the input buffer (no copy).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import type * as M from './messages.js';

/** A message type's wire codec. decode() throws ProtoDecodeError for bytes that are not that message. */
export interface MessageCodec<T> {
  encode(msg: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

/** Bytes that do not decode as the expected message (the transports answer INVALID_ARGUMENT or INTERNAL). */
export class ProtoDecodeError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProtoDecodeError';
  }
}

const PROTO_DIR = fileURLToPath(new URL('../../proto/', import.meta.url));
const PROTO_FILES = ['metadata.proto', 'replication_log.proto', 'proxy.proto'];

// protobufjs reads 64-bit integers exactly only with long.js (its dependency); without it, as numbers.
if (!protobuf.util.Long) throw new Error('protobufjs runs without long.js: 64-bit integers would lose precision');

const root = new protobuf.Root();
root.loadSync(
  PROTO_FILES.map((f) => path.join(PROTO_DIR, f)),
  { keepCase: false },
);
root.resolveAll();

type Obj = Record<string, unknown>;
type LongLike = { low: number; high: number };

const U64_MAX = (1n << 64n) - 1n;
const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;
const LONG_TYPES: Record<string, boolean> = { int64: false, sint64: false, sfixed64: false, uint64: true, fixed64: true };

// ---- 64-bit conversions ----

function longToBigint(v: LongLike | number, unsigned: boolean): bigint {
  if (typeof v === 'number') return BigInt(v);
  const lo = v.low >>> 0;
  const hi = v.high >>> 0;
  const u = hi === 0 ? BigInt(lo) : (BigInt(hi) << 32n) | BigInt(lo);
  return unsigned || hi < 0x80000000 ? u : BigInt.asIntN(64, u);
}

function bigintToLong(v: unknown, unsigned: boolean, where: string): LongLike {
  if (typeof v !== 'bigint') throw new TypeError(`${where}: expected a bigint, got ${typeof v}`);
  if (unsigned ? v < 0n || v > U64_MAX : v < I64_MIN || v > I64_MAX) {
    throw new RangeError(`${where}: ${v} does not fit in ${unsigned ? 'uint64' : 'int64'}`);
  }
  const u = BigInt.asUintN(64, v);
  return { low: Number(u & 0xffffffffn) | 0, high: Number(u >> 32n) | 0 };
}

// ---- conversion plans derived from the schema ----

type Kind = 'long' | 'bytes' | 'message' | 'scalar';

interface FieldPlan {
  readonly name: string;
  readonly where: string;
  readonly kind: Kind;
  readonly unsigned: boolean;
  readonly repeated: boolean;
  /** Absent in messages.ts unless it was on the wire. */
  readonly presence: boolean;
  /** The value of a non-presence field that is not on the wire. */
  readonly absent: () => unknown;
  readonly sub: () => Plan;
}

interface OneofPlan {
  /** protobufjs' virtual property naming the member that is set. */
  readonly virtual: string;
  /** The messages.ts property holding the tagged object. */
  readonly prop: string;
  readonly members: ReadonlyMap<string, FieldPlan>;
  readonly where: string;
}

interface Plan {
  readonly type: protobuf.Type;
  readonly name: string;
  readonly fields: readonly FieldPlan[];
  readonly oneofs: readonly OneofPlan[];
  /** The message is exactly one oneof: messages.ts represents it as the tagged object. */
  readonly bare: boolean;
  /** Field numbers of the schema (a known number under another wire type is an error). */
  readonly known: ReadonlyMap<number, string>;
}

const plans = new Map<protobuf.Type, Plan>();

function planOf(type: protobuf.Type): Plan {
  let plan = plans.get(type);
  if (!plan) {
    plan = buildPlan(type);
    plans.set(type, plan);
  }
  return plan;
}

function absentValue(field: protobuf.Field): () => unknown {
  if (field.resolvedType instanceof protobuf.Enum) return () => 0;
  switch (field.type) {
    case 'string':
      return () => '';
    case 'bool':
      return () => false;
    case 'bytes':
      return () => Buffer.alloc(0);
    default:
      return field.type in LONG_TYPES ? () => 0n : () => 0;
  }
}

function fieldPlan(field: protobuf.Field, typeName: string): FieldPlan {
  field.resolve();
  const isMessage = field.resolvedType instanceof protobuf.Type;
  const kind: Kind = isMessage ? 'message' : field.type in LONG_TYPES ? 'long' : field.type === 'bytes' ? 'bytes' : 'scalar';
  const subType = isMessage ? (field.resolvedType as protobuf.Type) : null;
  return {
    name: field.name,
    where: `${typeName}.${field.name}`,
    kind,
    unsigned: LONG_TYPES[field.type] === true,
    repeated: field.repeated,
    presence: !field.repeated && (isMessage || field.partOf !== null),
    absent: absentValue(field),
    sub: () => {
      if (!subType) throw new Error(`${typeName}.${field.name} is not a message field`);
      return planOf(subType);
    },
  };
}

function buildPlan(type: protobuf.Type): Plan {
  const name = type.fullName.replace(/^\./, '');
  const realOneofs = type.oneofsArray.filter((o) => !o.isProto3Optional);
  const inOneof = new Set(realOneofs.flatMap((o) => o.oneof));
  const fields = type.fieldsArray.filter((f) => !inOneof.has(f.name)).map((f) => fieldPlan(f, name));
  const oneofs = realOneofs.map((o) => ({
    virtual: o.name,
    prop: o.name.charAt(0).toLowerCase() + o.name.slice(1),
    members: new Map(o.fieldsArray.map((f) => [f.name, fieldPlan(f, name)] as const)),
    where: `${name}.${o.name}`,
  }));
  const known = new Map(type.fieldsArray.map((f) => [f.id, f.name] as const));
  return { type, name, fields, oneofs, bare: fields.length === 0 && oneofs.length === 1, known };
}

// ---- wire object → messages.ts ----

function valueIn(f: FieldPlan, v: unknown): unknown {
  switch (f.kind) {
    case 'long':
      return longToBigint(v as LongLike | number, f.unsigned);
    case 'message':
      return fromWire(f.sub(), v as Obj);
    case 'bytes':
      return v instanceof Uint8Array ? v : Buffer.alloc(0);
    default:
      return v;
  }
}

function readVarint32(raw: Uint8Array): number {
  let v = 0;
  for (let i = 0; i < 5 && i < raw.length; i++) {
    const b = raw[i] ?? 0;
    v |= (b & 0x7f) << (7 * i);
    if (b < 0x80) break;
  }
  return v >>> 0;
}

/** protobufjs skips a known field that arrives under another wire type; sqld (prost) refuses it. */
function checkUnknowns(plan: Plan, unknowns: readonly Uint8Array[]): void {
  for (const raw of unknowns) {
    const tag = readVarint32(raw);
    const id = tag >>> 3;
    if (id === 0) throw new ProtoDecodeError(`${plan.name}: invalid field number 0`);
    const known = plan.known.get(id);
    if (known !== undefined) throw new ProtoDecodeError(`${plan.name}.${known}: unexpected wire type ${tag & 7}`);
  }
}

function fromWire(plan: Plan, m: Obj): unknown {
  const unknowns = m.$unknowns as Uint8Array[] | undefined;
  if (unknowns) checkUnknowns(plan, unknowns);
  if (plan.bare) {
    const o = plan.oneofs[0]!;
    const which = m[o.virtual] as string | undefined;
    const member = which === undefined ? undefined : o.members.get(which);
    if (!member || which === undefined) throw new ProtoDecodeError(`${plan.name}: none of ${[...o.members.keys()].join(', ')} is set`);
    return { [which]: valueIn(member, m[which]) };
  }
  const out: Obj = {};
  for (const f of plan.fields) {
    const own = Object.prototype.hasOwnProperty.call(m, f.name) && m[f.name] != null;
    if (f.repeated) {
      const arr = own ? (m[f.name] as unknown[]) : [];
      const list = new Array<unknown>(arr.length);
      for (let i = 0; i < arr.length; i++) list[i] = valueIn(f, arr[i]);
      out[f.name] = list;
    } else if (own) {
      out[f.name] = valueIn(f, m[f.name]);
    } else if (!f.presence) {
      out[f.name] = f.absent();
    }
  }
  for (const o of plan.oneofs) {
    const which = m[o.virtual] as string | undefined;
    const member = which === undefined ? undefined : o.members.get(which);
    if (member && which !== undefined) out[o.prop] = { [which]: valueIn(member, m[which]) };
  }
  return out;
}

// ---- messages.ts → wire object ----

function valueOut(f: FieldPlan, v: unknown): unknown {
  switch (f.kind) {
    case 'long':
      return bigintToLong(v, f.unsigned, f.where);
    case 'message':
      return toWire(f.sub(), v);
    case 'bytes':
      if (!(v instanceof Uint8Array)) throw new TypeError(`${f.where}: expected a Uint8Array`);
      return v;
    default:
      return v;
  }
}

function onlyMember(o: OneofPlan, tagged: unknown): [string, FieldPlan] {
  let found: [string, FieldPlan] | undefined;
  if (tagged !== null && typeof tagged === 'object') {
    for (const [key, value] of Object.entries(tagged as Obj)) {
      if (value === undefined) continue;
      const member = o.members.get(key);
      if (!member || found) {
        found = undefined;
        break;
      }
      found = [key, member];
    }
  }
  if (!found) throw new TypeError(`${o.where}: expected an object with exactly one of ${[...o.members.keys()].join(', ')}`);
  return found;
}

function toWire(plan: Plan, v: unknown): Obj {
  if (v === null || typeof v !== 'object') throw new TypeError(`${plan.name}: expected an object`);
  const src = v as Obj;
  const out: Obj = {};
  if (plan.bare) {
    const [key, member] = onlyMember(plan.oneofs[0]!, src);
    out[key] = valueOut(member, src[key]);
    return out;
  }
  for (const f of plan.fields) {
    const x = src[f.name];
    if (x === undefined || x === null) continue;
    if (f.repeated) {
      if (!Array.isArray(x)) throw new TypeError(`${f.where}: expected an array`);
      out[f.name] = x.map((item) => valueOut(f, item));
    } else {
      out[f.name] = valueOut(f, x);
    }
  }
  for (const o of plan.oneofs) {
    const tagged = src[o.prop];
    if (tagged === undefined || tagged === null) continue;
    const [key, member] = onlyMember(o, tagged);
    out[key] = valueOut(member, (tagged as Obj)[key]);
  }
  return out;
}

// ---- codecs ----

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function decodeWith(type: protobuf.Type, bytes: Uint8Array): Obj {
  try {
    const reader = protobuf.Reader.create(asBuffer(bytes));
    reader.discardUnknown = false;
    return type.decode(reader);
  } catch (err) {
    throw new ProtoDecodeError(`${type.fullName.replace(/^\./, '')}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

function codecFor<T>(fullName: string): MessageCodec<T> {
  const type = root.lookupType(fullName);
  const plan = planOf(type);
  return {
    encode: (msg) => type.encode(toWire(plan, msg)).finish(),
    decode: (bytes) => {
      const m = decodeWith(type, bytes);
      try {
        return fromWire(plan, m) as T;
      } catch (err) {
        if (err instanceof ProtoDecodeError) throw err;
        throw new ProtoDecodeError(`${plan.name}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
    },
  };
}

// ---- hand-written Frame / Frames encoder (hot path) ----

function varint32Size(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

function varint64Size(v: LongLike): number {
  let hi = v.high >>> 0;
  let lo = v.low >>> 0;
  let n = 1;
  while (hi !== 0 || lo > 0x7f) {
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
    n++;
  }
  return n;
}

function writeVarint32(buf: Buffer, pos: number, v: number): number {
  while (v > 0x7f) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[pos++] = v;
  return pos;
}

function writeVarint64(buf: Buffer, pos: number, v: LongLike): number {
  let hi = v.high >>> 0;
  let lo = v.low >>> 0;
  while (hi !== 0 || lo > 0x7f) {
    buf[pos++] = (lo & 0x7f) | 0x80;
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
  }
  buf[pos++] = lo;
  return pos;
}

interface FramePlan {
  data: Uint8Array;
  timestamp: LongLike | undefined;
  durableFrameNo: LongLike | undefined;
  size: number;
}

function planFrame(frame: M.WireFrame): FramePlan {
  const data = frame.data;
  if (!(data instanceof Uint8Array)) throw new TypeError('wal_log.Frame.data: expected a Uint8Array');
  const timestamp = frame.timestamp === undefined ? undefined : bigintToLong(frame.timestamp, false, 'wal_log.Frame.timestamp');
  const durableFrameNo = frame.durableFrameNo === undefined ? undefined : bigintToLong(frame.durableFrameNo, true, 'wal_log.Frame.durableFrameNo');
  let size = data.length === 0 ? 0 : 1 + varint32Size(data.length) + data.length;
  if (timestamp) size += 1 + varint64Size(timestamp);
  if (durableFrameNo) size += 1 + varint64Size(durableFrameNo);
  return { data, timestamp, durableFrameNo, size };
}

function writeFrame(buf: Buffer, pos: number, p: FramePlan): number {
  if (p.data.length > 0) {
    buf[pos++] = 0x0a; // field 1, length-delimited
    pos = writeVarint32(buf, pos, p.data.length);
    buf.set(p.data, pos);
    pos += p.data.length;
  }
  if (p.timestamp) {
    buf[pos++] = 0x10; // field 2, varint
    pos = writeVarint64(buf, pos, p.timestamp);
  }
  if (p.durableFrameNo) {
    buf[pos++] = 0x18; // field 3, varint
    pos = writeVarint64(buf, pos, p.durableFrameNo);
  }
  return pos;
}

function encodeFrame(frame: M.WireFrame): Uint8Array {
  const p = planFrame(frame);
  const buf = Buffer.allocUnsafe(p.size);
  writeFrame(buf, 0, p);
  return buf;
}

function encodeFrames(msg: M.Frames): Uint8Array {
  const list = msg.frames.map(planFrame);
  let total = 0;
  for (const p of list) total += 1 + varint32Size(p.size) + p.size;
  const buf = Buffer.allocUnsafe(total);
  let pos = 0;
  for (const p of list) {
    buf[pos++] = 0x0a; // Frames.frames, field 1, length-delimited
    pos = writeVarint32(buf, pos, p.size);
    pos = writeFrame(buf, pos, p);
  }
  return buf;
}

const frameCodec = codecFor<M.WireFrame>('wal_log.Frame');
const framesCodec = codecFor<M.Frames>('wal_log.Frames');

/** One codec per message type the services use, typed with src/rpc/messages.ts. */
export const codecs = {
  HelloRequest: codecFor<M.HelloRequest>('wal_log.HelloRequest'),
  HelloResponse: codecFor<M.HelloResponse>('wal_log.HelloResponse'),
  LogOffset: codecFor<M.LogOffset>('wal_log.LogOffset'),
  Frame: { encode: encodeFrame, decode: (bytes) => frameCodec.decode(bytes) } as MessageCodec<M.WireFrame>,
  Frames: { encode: encodeFrames, decode: (bytes) => framesCodec.decode(bytes) } as MessageCodec<M.Frames>,
  DatabaseConfig: codecFor<M.DatabaseConfig>('metadata.DatabaseConfig'),
  ProgramReq: codecFor<M.ProgramReq>('proxy.ProgramReq'),
  ExecuteResults: codecFor<M.ExecuteResults>('proxy.ExecuteResults'),
  DescribeRequest: codecFor<M.DescribeRequest>('proxy.DescribeRequest'),
  DescribeResult: codecFor<M.DescribeResult>('proxy.DescribeResult'),
  DisconnectMessage: codecFor<M.DisconnectMessage>('proxy.DisconnectMessage'),
  Ack: codecFor<Record<string, never>>('proxy.Ack'),
  ExecReq: codecFor<M.ExecReq>('proxy.ExecReq'),
  ExecResp: codecFor<M.ExecResp>('proxy.ExecResp'),
} as const;

/** The reflected protobufjs schema (tests cross-check the hand-written Frame encoder against it). */
export const protoRoot: protobuf.Root = root;
