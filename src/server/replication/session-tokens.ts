/**
 * Hello session tokens (spec §6.5): a token changes when the process restarts and whenever a
 * namespace's config changes, so replicas re-handshake (and pick up the new config). Like sqld we
 * derive it from a random per-process id and the namespace's config version: MD5(id ‖ version as
 * u64 LE), read as a little-endian 128-bit number, written as a UUID. Config changes also end the
 * namespace's live LogEntries streams (their signal aborts).
 */
import { createHash, randomUUID } from 'node:crypto';

export class SessionTokens {
  /** Random per process; HelloResponse.generation_id too. */
  readonly processId: string;
  readonly #versions = new Map<string, bigint>();
  readonly #changes = new Map<string, AbortController>();

  constructor(processId: string = randomUUID()) {
    this.processId = processId;
  }

  version(namespace: string): bigint {
    return this.#versions.get(namespace) ?? 0n;
  }

  /** The namespace's current session token (a UUID string). */
  token(namespace: string): string {
    const v = Buffer.alloc(8);
    v.writeBigUInt64LE(this.version(namespace));
    const digest = createHash('md5').update(this.processId).update(v).digest();
    // The digest as a little-endian u128 → a UUID whose bytes are big-endian: reverse the bytes.
    const hex = Buffer.from(digest).reverse().toString('hex');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  /** The namespace's config changed: new token, and streams holding `changed()` end. */
  bump(namespace: string): void {
    this.#versions.set(namespace, this.version(namespace) + 1n);
    const ctl = this.#changes.get(namespace);
    this.#changes.delete(namespace);
    ctl?.abort(new Error(`the config of namespace ${namespace} changed`));
  }

  /** Aborts at the namespace's next config change. */
  changed(namespace: string): AbortSignal {
    let ctl = this.#changes.get(namespace);
    if (!ctl) {
      ctl = new AbortController();
      this.#changes.set(namespace, ctl);
    }
    return ctl.signal;
  }
}
