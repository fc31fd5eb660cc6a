import { describe, expect, it } from 'vitest';
import { ForbiddenError, SqlError } from '../../src/engine/sql-error.js';
import { classifyStatement } from '../../src/engine/sql-split.js';
import { statementPolicyError } from '../../src/engine/statement-policy.js';

function verdict(sql: string): string {
  const err = statementPolicyError(classifyStatement(sql));
  if (err === null) return 'ok';
  if (err instanceof ForbiddenError) return 'forbidden';
  return err instanceof SqlError ? err.code : 'other';
}

describe('statement policy (sqld classes)', () => {
  it.each([
    ['SELECT 1', 'ok'],
    ['INSERT INTO t VALUES (1)', 'ok'],
    ['CREATE TABLE t (x)', 'ok'],
    ['PRAGMA table_info(t)', 'ok'],
    ['PRAGMA main.table_info("t")', 'ok'],
    ['PRAGMA foreign_keys = ON', 'ok'],
    ['pragma user_version = 7', 'ok'],
    ['PRAGMA journal_mode', 'ok'],
    ['PRAGMA cache_size', 'ok'],
    ['/* c */ PRAGMA integrity_check', 'ok'],
    ['DETACH x', 'ok'],
    ['ANALYZE', 'ok'],
    ['PRAGMA journal_mode = DELETE', 'SQL_PARSE_ERROR'],
    ['PRAGMA main.journal_mode=delete', 'SQL_PARSE_ERROR'],
    ['PRAGMA wal_autocheckpoint = 1', 'SQL_PARSE_ERROR'],
    ['PRAGMA wal_checkpoint(TRUNCATE)', 'SQL_PARSE_ERROR'],
    ['PRAGMA cache_size(100)', 'SQL_PARSE_ERROR'],
    ['PRAGMA writable_schema = 1', 'SQL_PARSE_ERROR'],
    ['VACUUM', 'SQL_PARSE_ERROR'],
    ["VACUUM INTO '/tmp/copy.db'", 'SQL_PARSE_ERROR'],
    ['CREATE TEMP TABLE x (a)', 'SQL_PARSE_ERROR'],
    ['create temporary view v as select 1', 'SQL_PARSE_ERROR'],
    ["ATTACH DATABASE '/tmp/x.db' AS x", 'forbidden'],
  ])('%s → %s', (sql, expected) => {
    expect(verdict(sql)).toBe(expected);
  });

  it('names the attached target in the message', () => {
    const err = statementPolicyError(classifyStatement("ATTACH 'other' AS o"));
    expect(err?.message).toBe("Authorization forbidden: Namespace `other` doesn't allow attach");
  });
});
