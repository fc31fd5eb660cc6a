/**
 * A small SQLite-aware lexer that splits SQL text into statements and
 * classifies each statement (for transaction tracking and authorization).
 *
 * It does not parse SQL; it only understands enough of SQLite's lexical
 * structure (strings, quoted identifiers, comments, blob literals, bound
 * parameters) and of trigger bodies (`CREATE TRIGGER ... BEGIN ... END`) to
 * find the semicolons that really end a statement.
 */

export type StmtKind =
  | 'begin' | 'commit' | 'rollback' | 'savepoint' | 'release' | 'rollback_to'
  | 'attach' | 'detach' | 'select' | 'explain' | 'pragma' | 'ddl' | 'dml' | 'other';

export type BeginMode = 'deferred' | 'immediate' | 'exclusive' | 'readonly';

export interface SplitStmt {
  sql: string;
  kind: StmtKind;
  beginMode?: BeginMode;
}

// ---------------------------------------------------------------------------
// Lexer

type TokType = 'word' | 'string' | 'ident' | 'var' | 'semi' | 'lparen' | 'rparen' | 'punct';

interface Token {
  type: TokType;
  start: number;
  end: number;
}

/** SQLite's tokenizer treats exactly these as whitespace (not \v). */
function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d || c === 0x0c;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** Characters that may appear in a bare identifier, keyword or number: [A-Za-z0-9_$] and non-ASCII. */
function isWordChar(c: number): boolean {
  const lower = c | 0x20; // folds A-Z onto a-z
  return (lower >= 0x61 && lower <= 0x7a) || isDigit(c) || c === 0x5f || c === 0x24 || c >= 0x80;
}

class Lexer {
  private pos = 0;
  private readonly len: number;

  constructor(private readonly src: string) {
    this.len = src.length;
  }

  /** Returns the next significant token (comments and whitespace skipped). */
  next(): Token | undefined {
    const { src, len } = this;
    let pos = this.pos;
    while (pos < len) {
      const c = src[pos];
      if (isSpace(src.charCodeAt(pos))) {
        pos++;
      } else if (c === '-' && src[pos + 1] === '-') {
        const nl = src.indexOf('\n', pos + 2);
        pos = nl < 0 ? len : nl + 1;
      } else if (c === '/' && src[pos + 1] === '*') {
        const close = src.indexOf('*/', pos + 2);
        pos = close < 0 ? len : close + 2; // unterminated: runs to the end
      } else {
        break;
      }
    }
    if (pos >= len) {
      this.pos = len;
      return undefined;
    }
    const start = pos;
    let type: TokType = 'punct';
    let end = pos + 1;
    const c = src[pos] ?? '';
    const isBlob = (c === 'x' || c === 'X') && src[pos + 1] === "'";
    switch (isBlob ? 'blob' : c) {
      case 'blob':
        type = 'string'; // blob literal x'...'
        end = this.scanQuoted(pos + 1, "'");
        break;
      case ';':
        type = 'semi';
        break;
      case '(':
        type = 'lparen';
        break;
      case ')':
        type = 'rparen';
        break;
      case "'":
        type = 'string';
        end = this.scanQuoted(pos, "'");
        break;
      case '"':
      case '`':
        type = 'ident';
        end = this.scanQuoted(pos, c);
        break;
      case '[': {
        const close = src.indexOf(']', pos + 1);
        type = 'ident';
        end = close < 0 ? len : close + 1;
        break;
      }
      case '?':
        type = 'var';
        while (end < len && isDigit(src.charCodeAt(end))) end++;
        break;
      case ':':
      case '@':
      case '#':
      case '$':
        if (end < len && isWordChar(src.charCodeAt(end))) {
          type = 'var';
          end = this.scanWord(end);
        }
        break;
      default:
        if (isWordChar(src.charCodeAt(pos))) {
          type = 'word';
          end = this.scanWord(pos);
        }
    }
    this.pos = end;
    return { type, start, end };
  }

  /** Scans a quoted run starting at `open` (the opening quote); doubled quotes escape. */
  private scanQuoted(open: number, quote: string): number {
    let p = open + 1;
    for (;;) {
      const idx = this.src.indexOf(quote, p);
      if (idx < 0) return this.len; // unterminated: runs to the end
      if (this.src[idx + 1] !== quote) return idx + 1;
      p = idx + 2;
    }
  }

  private scanWord(from: number): number {
    let p = from;
    while (p < this.len && isWordChar(this.src.charCodeAt(p))) p++;
    return p;
  }
}

/** Upper-cased text of a bare word token, or '' for any other token. */
function kw(src: string, tok: Token | undefined): string {
  return tok !== undefined && tok.type === 'word' ? src.slice(tok.start, tok.end).toUpperCase() : '';
}

function tokenize(sql: string): Token[] {
  const lexer = new Lexer(sql);
  const out: Token[] = [];
  for (let t = lexer.next(); t !== undefined; t = lexer.next()) out.push(t);
  return out;
}

// ---------------------------------------------------------------------------
// Splitting

/**
 * Recognises the prefix `[EXPLAIN [QUERY PLAN]] CREATE [TEMP|TEMPORARY] TRIGGER`.
 * Feed it the statement's leading tokens; `isTrigger` becomes true once matched.
 */
class TriggerPrefix {
  private phase: 'start' | 'explain' | 'query' | 'create' | 'temp' | 'done' = 'start';
  isTrigger = false;

  get pending(): boolean {
    return this.phase !== 'done';
  }

  feed(word: string): void {
    switch (this.phase) {
      case 'start':
        this.phase = word === 'EXPLAIN' ? 'explain' : word === 'CREATE' ? 'create' : 'done';
        break;
      case 'explain':
        this.phase = word === 'QUERY' ? 'query' : word === 'CREATE' ? 'create' : 'done';
        break;
      case 'query':
        this.phase = word === 'PLAN' ? 'explain' : 'done';
        break;
      case 'create':
      case 'temp':
        if (this.phase === 'create' && (word === 'TEMP' || word === 'TEMPORARY')) {
          this.phase = 'temp';
        } else {
          this.isTrigger = word === 'TRIGGER';
          this.phase = 'done';
        }
        break;
      case 'done':
        break;
    }
  }
}

/**
 * Finds the [start, end) ranges of the non-empty statements in `sql`: from the
 * start of a statement's first token to the end of its last token, so the
 * terminating ';' and surrounding whitespace and comments are excluded.
 * Stops after `limit` statements.
 */
function statementRanges(sql: string, limit: number): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  if (limit <= 0) return ranges;
  const lexer = new Lexer(sql);
  let stmtStart = -1; // start of the current statement's first token, -1 if none yet
  let stmtEnd = 0;
  let prefix = new TriggerPrefix();
  let bodyStarted = false;
  let depth = 0; // BEGIN/CASE ... END nesting inside a trigger body

  for (let tok = lexer.next(); tok !== undefined; tok = lexer.next()) {
    if (tok.type === 'semi' && !(bodyStarted && depth > 0)) {
      if (stmtStart >= 0) {
        ranges.push([stmtStart, stmtEnd]);
        if (ranges.length >= limit) return ranges;
      }
      stmtStart = -1;
      prefix = new TriggerPrefix();
      bodyStarted = false;
      depth = 0;
      continue;
    }
    if (stmtStart < 0) stmtStart = tok.start;
    stmtEnd = tok.end;
    if (prefix.pending) {
      prefix.feed(kw(sql, tok));
    } else if (prefix.isTrigger && tok.type === 'word') {
      const word = kw(sql, tok);
      if (!bodyStarted) {
        if (word === 'BEGIN') {
          bodyStarted = true;
          depth = 1;
        }
      } else if (depth > 0) {
        if (word === 'CASE') depth++;
        else if (word === 'END') depth--;
      }
    }
  }
  if (stmtStart >= 0) ranges.push([stmtStart, stmtEnd]);
  return ranges;
}

/**
 * Splits `sql` into statements (each `sql` is the statement text without the
 * trailing ';', trimmed of surrounding whitespace and comments). Empty
 * statements (only whitespace/comments/;) are dropped.
 */
export function splitStatements(sql: string): SplitStmt[] {
  return statementRanges(sql, Number.POSITIVE_INFINITY).map(([a, b]) =>
    classifyTrimmed(sql.slice(a, b)),
  );
}

/** Number of non-empty statements in `sql` (cheap path: stops counting at 2). */
export function countStatements(sql: string): number {
  return statementRanges(sql, 2).length;
}

// ---------------------------------------------------------------------------
// Classification

/** Kinds decided by the first keyword alone. */
const SIMPLE_KINDS: Readonly<Partial<Record<string, StmtKind>>> = {
  COMMIT: 'commit',
  END: 'commit',
  SAVEPOINT: 'savepoint',
  RELEASE: 'release',
  ATTACH: 'attach',
  DETACH: 'detach',
  SELECT: 'select',
  VALUES: 'select',
  EXPLAIN: 'explain',
  PRAGMA: 'pragma',
  CREATE: 'ddl',
  DROP: 'ddl',
  ALTER: 'ddl',
  INSERT: 'dml',
  REPLACE: 'dml',
  UPDATE: 'dml',
  DELETE: 'dml',
};

const BEGIN_MODES: Readonly<Partial<Record<string, BeginMode>>> = {
  DEFERRED: 'deferred',
  IMMEDIATE: 'immediate',
  EXCLUSIVE: 'exclusive',
  READONLY: 'readonly',
};

function beginModeOf(sql: string, toks: readonly Token[]): BeginMode | undefined {
  // Ignore trailing semicolons, e.g. "BEGIN;".
  let n = toks.length;
  while (n > 0 && toks[n - 1]?.type === 'semi') n--;
  if (kw(sql, toks[0]) !== 'BEGIN') return undefined;
  let i = 1;
  let mode: BeginMode | undefined = BEGIN_MODES[kw(sql, toks[i])];
  if (mode !== undefined) i++;
  if (i < n && kw(sql, toks[i]) === 'TRANSACTION') {
    i++;
    const name = toks[i];
    if (i < n && name !== undefined && (name.type === 'word' || name.type === 'ident')) {
      // libSQL: `BEGIN TRANSACTION READONLY` (stock SQLite would read a name).
      if (mode === undefined && kw(sql, name) === 'READONLY') mode = 'readonly';
      i++;
    }
  }
  return i === n ? (mode ?? 'deferred') : undefined;
}

/**
 * If `sql` is `BEGIN [DEFERRED|IMMEDIATE|EXCLUSIVE] [TRANSACTION [name]]` or
 * libSQL's `BEGIN [TRANSACTION] READONLY`, returns the mode; otherwise
 * undefined.
 */
export function parseBeginMode(sql: string): BeginMode | undefined {
  return beginModeOf(sql, tokenize(sql));
}

/** Kind of the statement a `WITH` clause introduces (looks at depth 0 only). */
function withKind(sql: string, lexer: Lexer): StmtKind {
  let depth = 0;
  for (let tok = lexer.next(); tok !== undefined; tok = lexer.next()) {
    if (tok.type === 'lparen') depth++;
    else if (tok.type === 'rparen') depth = Math.max(0, depth - 1);
    else if (depth === 0 && tok.type === 'semi') break;
    else if (depth === 0 && tok.type === 'word') {
      const kind = SIMPLE_KINDS[kw(sql, tok)];
      if (kind === 'select' || kind === 'dml') return kind;
    }
  }
  return 'other';
}

/** True if a `ROLLBACK` statement (lexer positioned after it) has a `TO` clause. */
function hasTo(sql: string, lexer: Lexer): boolean {
  for (let tok = lexer.next(); tok !== undefined; tok = lexer.next()) {
    if (tok.type === 'semi') return false;
    if (kw(sql, tok) === 'TO') return true;
  }
  return false;
}

/**
 * Classifies one statement text. The returned `sql` is the text from the first
 * to the last token, i.e. without surrounding whitespace, comments and ';'.
 */
export function classifyStatement(sql: string): SplitStmt {
  const toks = tokenize(sql).filter((t) => t.type !== 'semi');
  const first = toks[0];
  const last = toks[toks.length - 1];
  if (first === undefined || last === undefined) return { sql: '', kind: 'other' };
  // Interior semicolons (e.g. in a trigger body) are kept: slice by position.
  return classifyTrimmed(sql.slice(first.start, last.end));
}

/** Classifies a statement text that is already trimmed. */
function classifyTrimmed(text: string): SplitStmt {
  const lexer = new Lexer(text);
  const first = kw(text, lexer.next());
  switch (first) {
    case 'BEGIN':
      return { sql: text, kind: 'begin', beginMode: parseBeginMode(text) ?? 'deferred' };
    case 'ROLLBACK':
      return { sql: text, kind: hasTo(text, lexer) ? 'rollback_to' : 'rollback' };
    case 'WITH':
      return { sql: text, kind: withKind(text, lexer) };
    default:
      return { sql: text, kind: SIMPLE_KINDS[first] ?? 'other' };
  }
}
