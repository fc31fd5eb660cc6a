/**
 * XXH64 (seed 0), incremental: zstd frames end with the low 32 bits of it over their content.
 * 64-bit words are kept as (high, low) u32 pairs so the hot loop stays in plain numbers; helper
 * results come back through the two-word scratch `R` (a typed array keeps V8 from boxing them).
 */

const P1H = 0x9e3779b1;
const P1L = 0x85ebca87;
const P2H = 0xc2b2ae3d;
const P2L = 0x27d4eb4f;
const P3H = 0x165667b1;
const P3L = 0x9e3779f9;
const P4H = 0x85ebca77;
const P4L = 0xc2b2ae63;
const P5H = 0x27d4eb2f;
const P5L = 0x165667c5;
const TWO32 = 4294967296;

/** [high, low] result of the helpers below. */
const R = new Uint32Array(2);

/** R = (ah:al) × (bh:bl) mod 2^64; the high word of al × bl from 16-bit halves. */
function mul(ah: number, al: number, bh: number, bl: number): void {
  const a0 = al & 0xffff;
  const a1 = al >>> 16;
  const b0 = bl & 0xffff;
  const b1 = bl >>> 16;
  let t = ((a0 * b0) >>> 16) + a1 * b0;
  const carry = t >>> 16;
  t = (t & 0xffff) + a0 * b1;
  R[0] = a1 * b1 + carry + (t >>> 16) + Math.imul(ah, bl) + Math.imul(al, bh);
  R[1] = Math.imul(al, bl);
}

function add(ah: number, al: number, bh: number, bl: number): void {
  const lo = al + bl;
  R[0] = ah + bh + (lo >= TWO32 ? 1 : 0);
  R[1] = lo;
}

/** Rotate left by 1..31 bits. */
function rotl(h: number, l: number, r: number): void {
  R[0] = (h << r) | (l >>> (32 - r));
  R[1] = (l << r) | (h >>> (32 - r));
}

/** acc = rotl(acc + input × P2, 31) × P1 */
function round(accH: number, accL: number, inH: number, inL: number): void {
  mul(inH, inL, P2H, P2L);
  add(accH, accL, R[0]!, R[1]!);
  rotl(R[0]!, R[1]!, 31);
  mul(R[0]!, R[1]!, P1H, P1L);
}

function u32le(b: Uint8Array, i: number): number {
  return (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
}

export class Xxh64 {
  // Accumulators v1..v4 as (high, low).
  private readonly v = new Uint32Array(8);
  private readonly buf = new Uint8Array(32);
  private bufLen = 0;
  private total = 0;

  constructor() {
    add(P1H, P1L, P2H, P2L);
    this.v[0] = R[0]!;
    this.v[1] = R[1]!;
    this.v[2] = P2H;
    this.v[3] = P2L;
    // v4 = -P1 mod 2^64
    add(~P1H >>> 0, ~P1L >>> 0, 0, 1);
    this.v[6] = R[0]!;
    this.v[7] = R[1]!;
  }

  update(data: Uint8Array): this {
    let i = 0;
    const n = data.length;
    this.total += n;
    if (this.bufLen > 0) {
      const take = Math.min(32 - this.bufLen, n);
      this.buf.set(data.subarray(0, take), this.bufLen);
      this.bufLen += take;
      i = take;
      if (this.bufLen < 32) return this;
      this.stripe(this.buf, 0);
      this.bufLen = 0;
    }
    for (; i + 32 <= n; i += 32) this.stripe(data, i);
    if (i < n) {
      this.buf.set(data.subarray(i), 0);
      this.bufLen = n - i;
    }
    return this;
  }

  private stripe(b: Uint8Array, at: number): void {
    const v = this.v;
    for (let k = 0; k < 4; k++) {
      const o = at + k * 8;
      round(v[2 * k]!, v[2 * k + 1]!, u32le(b, o + 4), u32le(b, o));
      v[2 * k] = R[0]!;
      v[2 * k + 1] = R[1]!;
    }
  }

  /** The 64-bit digest. */
  digest(): bigint {
    let hh: number;
    let hl: number;
    const v = this.v;
    if (this.total >= 32) {
      rotl(v[0]!, v[1]!, 1);
      let sh = R[0]!;
      let sl = R[1]!;
      for (const [k, r] of [[1, 7], [2, 12], [3, 18]] as const) {
        rotl(v[2 * k]!, v[2 * k + 1]!, r);
        add(sh, sl, R[0]!, R[1]!);
        sh = R[0]!;
        sl = R[1]!;
      }
      for (let k = 0; k < 4; k++) {
        round(0, 0, v[2 * k]!, v[2 * k + 1]!);
        mul((sh ^ R[0]!) >>> 0, (sl ^ R[1]!) >>> 0, P1H, P1L);
        add(R[0]!, R[1]!, P4H, P4L);
        sh = R[0]!;
        sl = R[1]!;
      }
      hh = sh;
      hl = sl;
    } else {
      hh = P5H;
      hl = P5L;
    }
    add(hh, hl, Math.floor(this.total / TWO32) >>> 0, this.total >>> 0);
    hh = R[0]!;
    hl = R[1]!;
    const b = this.buf;
    let i = 0;
    for (; i + 8 <= this.bufLen; i += 8) {
      round(0, 0, u32le(b, i + 4), u32le(b, i));
      rotl((hh ^ R[0]!) >>> 0, (hl ^ R[1]!) >>> 0, 27);
      mul(R[0]!, R[1]!, P1H, P1L);
      add(R[0]!, R[1]!, P4H, P4L);
      hh = R[0]!;
      hl = R[1]!;
    }
    if (i + 4 <= this.bufLen) {
      mul(0, u32le(b, i), P1H, P1L);
      rotl((hh ^ R[0]!) >>> 0, (hl ^ R[1]!) >>> 0, 23);
      mul(R[0]!, R[1]!, P2H, P2L);
      add(R[0]!, R[1]!, P3H, P3L);
      hh = R[0]!;
      hl = R[1]!;
      i += 4;
    }
    for (; i < this.bufLen; i++) {
      mul(0, b[i]!, P5H, P5L);
      rotl((hh ^ R[0]!) >>> 0, (hl ^ R[1]!) >>> 0, 11);
      mul(R[0]!, R[1]!, P1H, P1L);
      hh = R[0]!;
      hl = R[1]!;
    }
    // Avalanche.
    hl = (hl ^ (hh >>> 1)) >>> 0;
    mul(hh, hl, P2H, P2L);
    hh = R[0]!;
    hl = R[1]!;
    hl = (hl ^ ((hl >>> 29) | (hh << 3))) >>> 0;
    hh = (hh ^ (hh >>> 29)) >>> 0;
    mul(hh, hl, P3H, P3L);
    hh = R[0]!;
    hl = (R[1]! ^ R[0]!) >>> 0;
    return (BigInt(hh) << 32n) | BigInt(hl);
  }
}

/** XXH64 (seed 0) of `data`. */
export function xxh64(data: Uint8Array): bigint {
  return new Xxh64().update(data).digest();
}
