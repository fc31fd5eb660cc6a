import { createHmac, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { HranaError, ProtocolError } from '../hrana/errors.js';
import type { HranaStream } from '../hrana/stream.js';

const EXPIRED_MEMORY_MS = 300_000;

export interface HttpStreamEntry {
  readonly id: number;
  readonly stream: HranaStream;
  readonly namespace: string;
  /** Who opened it (the remote address): the unit of the fair share (`makeRoom`). */
  readonly owner: string;
  seq: number;
  busy: boolean;
  lastUsed: number;
  release: () => void;
}

/**
 * Hrana-over-HTTP streams and their batons (spec §4.4). A baton is base64 (no padding) of
 * stream id ‖ sequence number ‖ HMAC-SHA256 of both under a per-process key: unforgeable and single use.
 * Idle streams expire; their batons answer STREAM_EXPIRED for a while, then "invalid".
 */
export class HttpStreams {
  private readonly key = randomBytes(32);
  // Numbers, not bigints (cheaper per request): from a random start below 2^40, they stay exact.
  private nextId = randomInt(2 ** 40);
  private readonly live = new Map<number, HttpStreamEntry>();
  private readonly expired = new Map<number, number>();
  /** Per owner, its idle streams, least recently used first: makeRoom's oldest without a scan. */
  private readonly idleOf = new Map<string, Set<HttpStreamEntry>>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly expiryMs: number) {
    this.sweeper = setInterval(() => this.sweep(), Math.min(1000, expiryMs));
    this.sweeper.unref();
  }

  get size(): number {
    return this.live.size;
  }

  /** Registers a new stream, already marked busy for the request that created it. */
  add(stream: HranaStream, namespace: string, owner: string, release: () => void): HttpStreamEntry {
    // Ids need not be secret: the HMAC makes batons unforgeable, and ids never repeat in a process.
    const id = this.nextId++;
    const entry: HttpStreamEntry = { id, stream, namespace, owner, seq: 0, busy: true, lastUsed: Date.now(), release };
    this.live.set(id, entry);
    return entry;
  }

  /** Checks a baton and marks its stream busy. */
  take(baton: string): HttpStreamEntry {
    const raw = /^[A-Za-z0-9+/]+={0,2}$/.test(baton) ? Buffer.from(baton, 'base64') : Buffer.alloc(0);
    if (raw.length !== 48 || !timingSafeEqual(raw.subarray(16), this.mac(raw.subarray(0, 16)))) {
      throw new ProtocolError('Received an invalid baton');
    }
    const id = readU64(raw, 0);
    const seq = readU64(raw, 8);
    const entry = this.live.get(id);
    if (!entry) {
      if (this.expired.has(id)) throw new HranaError('STREAM_EXPIRED', 'The stream has expired due to inactivity');
      throw new ProtocolError('Received an invalid baton');
    }
    if (entry.busy || entry.seq !== seq) throw new ProtocolError('Received a baton that has already been used');
    entry.busy = true;
    this.leaveIdle(entry);
    return entry;
  }

  /** Ends a request on the stream: returns the next baton (null once the stream is closed). */
  finish(entry: HttpStreamEntry): string | null {
    if (entry.stream.isClosed) {
      this.destroy(entry);
      return null;
    }
    const baton = this.peekNextBaton(entry);
    entry.busy = false;
    entry.seq += 1;
    entry.lastUsed = Date.now();
    let idle = this.idleOf.get(entry.owner);
    if (idle === undefined) {
      idle = new Set();
      this.idleOf.set(entry.owner, idle);
    }
    idle.add(entry);
    return baton;
  }

  /** The baton `finish` will return (cursors hand it out before their batch has finished). */
  peekNextBaton(entry: HttpStreamEntry): string {
    const head = Buffer.alloc(16);
    writeU64(head, entry.id, 0);
    writeU64(head, entry.seq + 1, 8);
    return Buffer.concat([head, this.mac(head)]).toString('base64').replace(/=+$/, '');
  }

  /**
   * Before `owner` opens another stream: when it already holds `share` idle ones (dropped batons,
   * say), the oldest expires now rather than after the expiry time, so one client's abandoned
   * streams cannot hold the connection slots everyone else waits for. Returns whether one expired.
   */
  makeRoom(owner: string, share: number): boolean {
    const idle = this.idleOf.get(owner);
    if (idle === undefined || idle.size < share) return false;
    const oldest = idle.values().next().value!;
    this.destroy(oldest);
    this.expired.set(oldest.id, Date.now());
    return true;
  }

  destroy(entry: HttpStreamEntry): void {
    if (this.live.get(entry.id) !== entry) return;
    this.live.delete(entry.id);
    this.leaveIdle(entry);
    try {
      entry.stream.close();
    } finally {
      entry.release();
    }
  }

  /**
   * One line per live stream for the admin API's `GET /v1/diagnostics` (sqld's shape: a string per
   * stream): `acquired` while a request runs on it, otherwise empty (an idle primary connection).
   */
  diagnostics(): string[] {
    return [...this.live.values()].map((entry) => (entry.busy ? 'acquired' : ''));
  }

  closeAll(): void {
    clearInterval(this.sweeper);
    for (const entry of [...this.live.values()]) this.destroy(entry);
  }

  private leaveIdle(entry: HttpStreamEntry): void {
    const idle = this.idleOf.get(entry.owner);
    if (idle === undefined) return;
    idle.delete(entry);
    if (idle.size === 0) this.idleOf.delete(entry.owner);
  }

  private mac(head: Buffer): Buffer {
    return createHmac('sha256', this.key).update(head).digest();
  }

  private sweep(): void {
    const now = Date.now();
    for (const entry of [...this.live.values()]) {
      if (!entry.busy && now - entry.lastUsed >= this.expiryMs) {
        this.destroy(entry);
        this.expired.set(entry.id, now);
      }
    }
    for (const [id, at] of this.expired) if (now - at > EXPIRED_MEMORY_MS) this.expired.delete(id);
  }
}

/** A safe integer as 8 bytes, big-endian (the baton's fields). */
function writeU64(buf: Buffer, value: number, offset: number): void {
  buf.writeUInt32BE(Math.floor(value / 2 ** 32), offset);
  buf.writeUInt32BE(value >>> 0, offset + 4);
}

/** What `writeU64` wrote (only read from batons whose MAC matched: ours). */
function readU64(buf: Buffer, offset: number): number {
  return buf.readUInt32BE(offset) * 2 ** 32 + buf.readUInt32BE(offset + 4);
}
