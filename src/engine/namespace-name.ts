/**
 * Our rules for namespace names (docs/ADMIN.md, "Namespace names"). sqld accepts any non-empty
 * UTF-8 name (spec §2); we keep each namespace in a folder named after it (`dbs/<name>/`), so a
 * name must be a safe, portable single path segment. This module is the only place that decides.
 *
 * - 1 to 128 bytes of UTF-8, well-formed (no lone surrogates), in Unicode NFC (so a name is one
 *   folder on file systems that normalise names, as macOS does);
 * - no `/`, `\`, NUL or other control character (C0, DEL, C1);
 * - not `.` and no `..` anywhere;
 * - `-` is allowed: it is the usual word separator in database names. Backup keys are
 *   `ns-<db_id>:<name>-<generation>/…` (bottomless-format §1.2); our backup code parses them exactly
 *   (a 36-character generation id, then `/`), so `a` and `a-b` never mix there.
 *
 * A name may differ from an existing one only by case on a case-insensitive file system; creation
 * refuses such a name (Namespaces.create), lookups stay exact as in sqld.
 */
import { LibsqlctlError } from '../errors.js';

/** Longest name in UTF-8 bytes (a folder name may hold 255 on common file systems; keys stay short). */
export const MAX_NAMESPACE_NAME_BYTES = 128;

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** With the `u` flag a paired surrogate is one code point: this matches only lone halves (not UTF-8). */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** A namespace name that breaks our rules (HTTP 400). */
export class InvalidNamespaceNameError extends LibsqlctlError {
  constructor(readonly reason: string) {
    super('INVALID_NAMESPACE', `Invalid namespace: \`${reason}\``);
  }
}

/** Why `name` is not a valid namespace name, or null when it is. */
export function namespaceNameProblem(name: string): string | null {
  if (name.length === 0) return 'the name is empty';
  if (LONE_SURROGATE.test(name)) return 'the name is not valid UTF-8';
  if (Buffer.byteLength(name, 'utf8') > MAX_NAMESPACE_NAME_BYTES) return `the name is longer than ${MAX_NAMESPACE_NAME_BYTES} bytes`;
  if (name.includes('/') || name.includes('\\')) return 'the name contains a slash or a backslash';
  if (CONTROL.test(name)) return 'the name contains a NUL or control character';
  if (name === '.' || name.includes('..')) return 'the name is "." or contains ".."';
  if (name.normalize('NFC') !== name) return 'the name is not in Unicode normal form C';
  return null;
}

/** Throws InvalidNamespaceNameError for a name that breaks the rules. */
export function checkNamespaceName(name: string): void {
  const problem = namespaceNameProblem(name);
  if (problem !== null) throw new InvalidNamespaceNameError(problem);
}

/** Whether `name` is a valid namespace name. */
export function isValidNamespaceName(name: string): boolean {
  return namespaceNameProblem(name) === null;
}
