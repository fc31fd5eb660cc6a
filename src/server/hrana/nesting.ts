/**
 * Bounds on how deeply client messages may nest. The decoders that follow client input down a
 * nested shape recurse, so without a bound a hostile message exhausts the stack (a 500 or a 1011
 * close instead of a decode error). sqld's decoders stop at similar depths.
 */

/** Deepest JSON nesting (arrays and objects together) in a client message: serde_json's limit. */
export const MAX_JSON_DEPTH = 128;

/** Deepest nesting of protobuf messages in a client message; the same bound as for JSON. */
export const MAX_PROTOBUF_DEPTH = 128;

/** Deepest batch condition: each `not`, `and` and `or` opens one level. */
export const MAX_COND_DEPTH = 100;

/** JSON text nested deeper than MAX_JSON_DEPTH, found before it is parsed. */
export class JsonNestingError extends Error {}

/**
 * Checks the nesting of JSON text without parsing it (parsing first would build every level):
 * brackets are counted outside strings. Throws JsonNestingError worded as serde_json's
 * (`recursion limit exceeded at line L column C`); malformed text is left for the parser.
 */
export function checkJsonNesting(text: string, maxDepth = MAX_JSON_DEPTH): void {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // a string: jump to its closing quote (the loop's i++ steps past it)
      i = stringEnd(text, i + 1) - 1;
      if (i < 0) return;
    } else if (c === 0x5b || c === 0x7b) {
      depth++;
      if (depth > maxDepth) throw new JsonNestingError(`recursion limit exceeded at ${lineColumn(text, i)}`);
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
}

/** The index just after the closing quote of the string whose text starts at `from`; -1: unterminated. */
function stringEnd(text: string, from: number): number {
  let pos = from;
  for (;;) {
    const quote = text.indexOf('"', pos);
    if (quote < 0) return -1;
    let backslashes = 0;
    while (text.charCodeAt(quote - 1 - backslashes) === 0x5c) backslashes++;
    if (backslashes % 2 === 0) return quote + 1;
    pos = quote + 1;
  }
}

/** serde_json's position of the character at `index`: 1-based line and column. */
function lineColumn(text: string, index: number): string {
  const before = text.slice(0, index + 1);
  const lineStart = before.lastIndexOf('\n') + 1;
  let line = 1;
  for (let i = before.indexOf('\n'); i >= 0; i = before.indexOf('\n', i + 1)) line++;
  return `line ${line} column ${index + 1 - lineStart}`;
}
