import { ForbiddenError, SqlError } from './sql-error.js';
import type { SplitStmt } from './sql-split.js';

/**
 * Which statements a client may run, after sqld's classifier (spec §4.7). Besides compatibility this
 * protects the engine: a client must not switch the journal mode, change auto-checkpointing,
 * checkpoint behind the frame capture, or write files with `VACUUM INTO` / `ATTACH`.
 */

/** Pragmas sqld accepts in any form. */
const ALWAYS = new Set([
  'table_list', 'index_list', 'table_info', 'table_xinfo', 'index_info', 'index_xinfo', 'pragma_list',
  'compile_options', 'database_list', 'function_list', 'module_list', 'encoding',
  'defer_foreign_keys', 'foreign_keys', 'foreign_key_list', 'foreign_key_check', 'collation_list',
  'data_version', 'freelist_count', 'integrity_check', 'legacy_file_format', 'page_count', 'quick_check',
  'stats', 'user_version',
]);

/** Pragmas sqld accepts only as a query (without a value). */
const QUERY_ONLY = new Set([
  'schema_version', 'analysis_limit', 'application_id', 'auto_vacuum', 'automatic_index', 'busy_timeout',
  'cache_size', 'cache_spill', 'cell_size_check', 'checkpoint_fullfsync', 'fullfsync', 'hard_heap_limit',
  'journal_mode', 'journal_size_limit', 'legacy_alter_table', 'locking_mode', 'max_page_count', 'mmap_size',
  'page_size', 'query_only', 'read_uncommitted', 'recursive_triggers', 'reverse_unordered_selects',
  'secure_delete', 'soft_heap_limit', 'synchronous', 'temp_store', 'threads', 'trusted_schema',
  'wal_autocheckpoint',
]);

/** Pragmas sqld classes as reads (a read-only principal may run them); every other allowed one is a write. */
const READ_PRAGMAS = new Set([
  'table_list', 'index_list', 'table_info', 'table_xinfo', 'index_info', 'index_xinfo', 'pragma_list',
  'compile_options', 'database_list', 'function_list', 'module_list', 'encoding', 'schema_version',
]);

const PRAGMA_RE = /^pragma\s+(?:(?:"[^"]*"|\w+)\s*\.\s*)?"?(\w+)"?\s*([=(])?/i;
const TEMP_RE = /^create\s+(?:temp|temporary)\b/i;
const VACUUM_RE = /^vacuum\b/i;
const ATTACH_RE = /^attach\s+(?:database\s+)?(.+?)\s+as\b/i;

function unsupported(sql: string): SqlError {
  return new SqlError('SQL_PARSE_ERROR', `SQL string could not be parsed: unsupported statement: ${sql}`);
}

/** The error a client gets for this statement, or null when it may run. */
export function statementPolicyError(info: SplitStmt): SqlError | ForbiddenError | null {
  const sql = info.sql;
  switch (info.kind) {
    case 'pragma': {
      const m = PRAGMA_RE.exec(sql);
      const name = m?.[1]?.toLowerCase();
      if (name === undefined) return unsupported(sql);
      if (ALWAYS.has(name)) return null;
      if (QUERY_ONLY.has(name) && m?.[2] === undefined) return null;
      return unsupported(sql);
    }
    case 'attach': {
      // sqld attaches namespaces whose config has allow_attach; we store that setting but refuse every
      // ATTACH: better-sqlite3 cannot open the target read-only, and writes there would escape its capture.
      const target = ATTACH_RE.exec(sql)?.[1]?.replace(/^['"`[]|['"`\]]$/g, '') ?? '';
      return new ForbiddenError('FORBIDDEN', `Authorization forbidden: Namespace \`${target}\` doesn't allow attach`);
    }
    case 'ddl':
      return TEMP_RE.test(sql) ? unsupported(sql) : null;
    case 'other':
      return VACUUM_RE.test(sql) ? unsupported(sql) : null;
    default:
      return null;
  }
}

/**
 * Whether running the statement needs Write permission (sqld's classes, spec §3.7), which is not
 * always what SQLite's `readonly` says: `BEGIN IMMEDIATE` begins a transaction (Read in sqld; a
 * read-only principal's runs deferred), while `PRAGMA foreign_keys = OFF` or `PRAGMA user_version`
 * change or reveal connection state that sqld reserves for writers.
 */
export function needsWritePermission(info: SplitStmt, sqliteReadonly: boolean): boolean {
  if (info.kind === 'begin') return false;
  if (info.kind === 'pragma') {
    const name = PRAGMA_RE.exec(info.sql)?.[1]?.toLowerCase();
    return name === undefined || !READ_PRAGMAS.has(name) || !sqliteReadonly;
  }
  return !sqliteReadonly;
}
