/**
 * JSON helpers of the legacy `POST /` API (spec §4.2). Its values are untyped JSON, so integers and
 * reals must be told apart by their spelling and integers beyond 2^53 must stay exact: the parser
 * below returns integer literals as bigint and every other number as a JS number. The writer emits
 * bigints verbatim and reals the way sqld's serializer spells them (`1.0`, `1e20`, `1.5e-7`).
 */

import { MAX_JSON_DEPTH } from '../../hrana/nesting.js';

export type JsonValue = null | boolean | bigint | number | string | JsonValue[] | JsonObject;
/** A JSON object; created without a prototype so any key (even `__proto__`) is an own property. */
export interface JsonObject {
  [key: string]: JsonValue;
}

/** A syntax error, worded like serde_json's (`expected value at line 1 column 1`). */
export class JsonSyntaxError extends Error {}

const ESCAPES: Readonly<Record<string, string>> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

class Parser {
  private pos = 0;

  constructor(private readonly src: string) {}

  parseDocument(): JsonValue {
    const value = this.value(0);
    this.skipSpace();
    if (this.pos < this.src.length) this.fail('trailing characters', true);
    return value;
  }

  /** Throws with serde_json's position: the offending character (1-based column), or the end. */
  private fail(what: string, atChar = this.pos < this.src.length): never {
    const upTo = this.src.slice(0, atChar ? this.pos + 1 : this.pos);
    const line = upTo.split('\n').length;
    const column = upTo.length - (upTo.lastIndexOf('\n') + 1);
    throw new JsonSyntaxError(`${what} at line ${line} column ${column}`);
  }

  private eof(what: string): never {
    this.pos = this.src.length;
    return this.fail(`EOF while parsing ${what}`, false);
  }

  private skipSpace(): void {
    while (this.pos < this.src.length && ' \t\n\r'.includes(this.src[this.pos]!)) this.pos++;
  }

  private value(depth: number): JsonValue {
    this.skipSpace();
    if (this.pos >= this.src.length) this.eof('a value');
    const c = this.src[this.pos]!;
    if (c === '{' || c === '[') {
      if (depth >= MAX_JSON_DEPTH) this.fail('recursion limit exceeded');
      this.pos++;
      return c === '{' ? this.object(depth + 1) : this.array(depth + 1);
    }
    if (c === '"') {
      this.pos++;
      return this.string();
    }
    if (c === '-' || (c >= '0' && c <= '9')) return this.number();
    for (const [word, v] of [['null', null], ['true', true], ['false', false]] as const) {
      if (this.src.startsWith(word, this.pos)) {
        this.pos += word.length;
        return v;
      }
    }
    const partial = ['null', 'true', 'false'].find((w) => w.startsWith(this.src.slice(this.pos)));
    if (partial !== undefined) this.eof('a value');
    return this.fail(/[a-z]/.test(c) ? 'expected ident' : 'expected value');
  }

  private object(depth: number): JsonObject {
    const out = Object.create(null) as JsonObject;
    this.skipSpace();
    if (this.src[this.pos] === '}') {
      this.pos++;
      return out;
    }
    for (;;) {
      this.skipSpace();
      if (this.pos >= this.src.length) this.eof('an object');
      if (this.src[this.pos] !== '"') this.fail(this.src[this.pos] === '}' ? 'trailing comma' : 'key must be a string');
      this.pos++;
      const key = this.string();
      this.skipSpace();
      if (this.pos >= this.src.length) this.eof('an object');
      if (this.src[this.pos] !== ':') this.fail('expected `:`');
      this.pos++;
      out[key] = this.value(depth);
      this.skipSpace();
      if (this.pos >= this.src.length) this.eof('an object');
      const c = this.src[this.pos++];
      if (c === '}') return out;
      if (c !== ',') {
        this.pos--;
        this.fail('expected `,` or `}`');
      }
    }
  }

  private array(depth: number): JsonValue[] {
    const out: JsonValue[] = [];
    this.skipSpace();
    if (this.src[this.pos] === ']') {
      this.pos++;
      return out;
    }
    for (;;) {
      this.skipSpace();
      if (this.src[this.pos] === ']') this.fail('trailing comma');
      out.push(this.value(depth));
      this.skipSpace();
      if (this.pos >= this.src.length) this.eof('a list');
      const c = this.src[this.pos++];
      if (c === ']') return out;
      if (c !== ',') {
        this.pos--;
        this.fail('expected `,` or `]`');
      }
    }
  }

  private string(): string {
    let out = '';
    let start = this.pos;
    for (;;) {
      if (this.pos >= this.src.length) this.eof('a string');
      const c = this.src[this.pos]!;
      if (c === '"') {
        out += this.src.slice(start, this.pos++);
        return out;
      }
      if (c.charCodeAt(0) < 0x20) this.fail('control character (\\u0000-\\u001F) found while parsing a string');
      if (c !== '\\') {
        this.pos++;
        continue;
      }
      out += this.src.slice(start, this.pos);
      this.pos++;
      if (this.pos >= this.src.length) this.eof('a string');
      const e = this.src[this.pos]!;
      if (e === 'u') {
        const hex = this.src.slice(this.pos + 1, this.pos + 5);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) {
          if (this.pos + 5 > this.src.length) this.eof('a string');
          this.fail('invalid escape');
        }
        out += String.fromCharCode(parseInt(hex, 16));
        this.pos += 5;
      } else {
        const mapped = ESCAPES[e];
        if (mapped === undefined) this.fail('invalid escape');
        out += mapped;
        this.pos++;
      }
      start = this.pos;
    }
  }

  private number(): bigint | number {
    const m = /^-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(this.src.slice(this.pos, this.pos + 1100));
    if (m === null) {
      this.pos++;
      if (this.pos >= this.src.length) this.eof('a value');
      return this.fail('invalid number');
    }
    const text = m[0];
    this.pos += text.length;
    const next = this.src[this.pos];
    if (next !== undefined && /[.eE\d]/.test(next)) this.fail('invalid number');
    if (m[1] === undefined && m[2] === undefined) return BigInt(text);
    const n = Number(text);
    if (!Number.isFinite(n)) this.fail('number out of range', false);
    return n;
  }
}

/** Parses JSON text; integer literals become bigint, other numbers JS numbers. */
export function parseJsonExact(text: string): JsonValue {
  return new Parser(text).parseDocument();
}

/**
 * A finite double as Rust's ryu formatter prints it (what serde_json emits): shortest round-trip
 * digits; plain notation with at least one fractional digit for exponents −5 < e ≤ 16, otherwise
 * scientific with a bare exponent (`1e20`, `1.5e-7`).
 */
export function formatReal(x: number): string {
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const [mantissa = '0', exp = '0'] = Math.abs(x).toExponential().split('e');
  const digits = mantissa.replace('.', '');
  const len = digits.length;
  const kk = Number(exp) + 1; // the decimal point sits after `kk` digits
  let body: string;
  if (kk >= len && kk <= 16) body = `${digits}${'0'.repeat(kk - len)}.0`;
  else if (kk > 0 && kk <= 16) body = `${digits.slice(0, kk)}.${digits.slice(kk)}`;
  else if (kk > -5 && kk <= 0) body = `0.${'0'.repeat(-kk)}${digits}`;
  else if (len === 1) body = `${digits}e${kk - 1}`;
  else body = `${digits[0]}.${digits.slice(1)}e${kk - 1}`;
  return sign + body;
}
