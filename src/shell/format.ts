/** Pure text helpers of the admin shell's screens. */
import type { NamespaceSummary } from './api/admin-client.js';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** `8192` → `8.0 KiB`. */
export function formatBytes(n: number | null): string {
  if (n === null) return '–';
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u += 1;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${UNITS[u]}`;
}

/** `1234567` → `1,234,567`; null → `–`. */
export function formatCount(n: number | null): string {
  return n === null ? '–' : n.toLocaleString('en-US');
}

/** What a namespace refuses: `reads+writes`, `writes`, or `` when nothing. */
export function blockedText(ns: Pick<NamespaceSummary, 'blockReads' | 'blockWrites'>): string {
  if (ns.blockReads) return 'reads+writes';
  if (ns.blockWrites) return 'writes';
  return '';
}

/** Cuts `s` to `width` columns, marking the cut with `…`; pads to `width` when `pad`. */
export function fit(s: string, width: number, pad = true): string {
  if (width <= 0) return '';
  const flat = s.replace(/[\r\n\t]/g, ' ');
  const cut = flat.length > width ? `${flat.slice(0, Math.max(0, width - 1))}…` : flat;
  return pad ? cut.padEnd(width) : cut;
}

/** `12:03:04` in local time. */
export function clock(d: Date): string {
  return d.toTimeString().slice(0, 8);
}
