import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import Database from 'better-sqlite3';
import {
  classifyStatement,
  countStatements,
  parseBeginMode,
  splitStatements,
  type BeginMode,
  type StmtKind,
} from '../../src/engine/sql-split.js';

const texts = (sql: string): string[] => splitStatements(sql).map((s) => s.sql);

describe('splitStatements: basics', () => {
  it('returns nothing for empty or blank input', () => {
    expect(splitStatements('')).toEqual([]);
    expect(splitStatements('   \n\t\r\f ')).toEqual([]);
    expect(splitStatements(';')).toEqual([]);
    expect(splitStatements(' ; ;;\n;')).toEqual([]);
    expect(splitStatements('-- only a comment')).toEqual([]);
    expect(splitStatements('/* block */ -- line\n ; /* x */;')).toEqual([]);
    expect(splitStatements('/* unterminated ; comment')).toEqual([]);
  });

  it('splits on semicolons and trims whitespace', () => {
    expect(texts('SELECT 1; SELECT 2')).toEqual(['SELECT 1', 'SELECT 2']);
    expect(texts('  SELECT 1 ;\n\n  SELECT 2 ;  ')).toEqual(['SELECT 1', 'SELECT 2']);
    expect(texts('SELECT 1')).toEqual(['SELECT 1']);
  });

  it('drops leading, trailing and repeated semicolons', () => {
    expect(texts(';;SELECT 1;;;SELECT 2;;')).toEqual(['SELECT 1', 'SELECT 2']);
    expect(texts('; ; SELECT 1 ; ;')).toEqual(['SELECT 1']);
  });

  it('returns classified statements', () => {
    expect(splitStatements('BEGIN IMMEDIATE; INSERT INTO t VALUES (1); COMMIT')).toEqual([
      { sql: 'BEGIN IMMEDIATE', kind: 'begin', beginMode: 'immediate' },
      { sql: 'INSERT INTO t VALUES (1)', kind: 'dml' },
      { sql: 'COMMIT', kind: 'commit' },
    ]);
  });
});

describe('splitStatements: lexical structure', () => {
  it('ignores semicolons inside single-quoted strings', () => {
    expect(texts("SELECT 'a;b'; SELECT 2")).toEqual(["SELECT 'a;b'", 'SELECT 2']);
    expect(texts("SELECT 'it''s; fine'; SELECT ''';'''")).toEqual([
      "SELECT 'it''s; fine'",
      "SELECT ''';'''",
    ]);
    expect(texts("SELECT '';SELECT 1")).toEqual(["SELECT ''", 'SELECT 1']);
  });

  it('ignores semicolons inside quoted identifiers', () => {
    expect(texts('SELECT "a;b" FROM t; SELECT 2')).toEqual(['SELECT "a;b" FROM t', 'SELECT 2']);
    expect(texts('SELECT "a"";b"; SELECT 2')).toEqual(['SELECT "a"";b"', 'SELECT 2']);
    expect(texts('SELECT `a;b`; SELECT `x``;y`; SELECT 3')).toEqual([
      'SELECT `a;b`',
      'SELECT `x``;y`',
      'SELECT 3',
    ]);
    expect(texts('SELECT [a;b]; SELECT 2')).toEqual(['SELECT [a;b]', 'SELECT 2']);
    expect(texts("SELECT [it's]; SELECT 2")).toEqual(["SELECT [it's]", 'SELECT 2']);
  });

  it('ignores semicolons inside comments', () => {
    expect(texts('SELECT 1 -- a; b\n + 1; SELECT 2')).toEqual(['SELECT 1 -- a; b\n + 1', 'SELECT 2']);
    expect(texts('SELECT 1 -- a; b\n; SELECT 2')).toEqual(['SELECT 1', 'SELECT 2']);
    expect(texts('SELECT /* ; */ 1; SELECT 2')).toEqual(['SELECT /* ; */ 1', 'SELECT 2']);
    expect(texts('SELECT /* a; b\n c; */ 1; SELECT 2')).toEqual(['SELECT /* a; b\n c; */ 1', 'SELECT 2']);
    expect(texts("SELECT 1 -- it's\n; SELECT 2")).toEqual(['SELECT 1', 'SELECT 2']);
    expect(texts('SELECT 1 /* "; */; SELECT 2')).toEqual(['SELECT 1', 'SELECT 2']);
  });

  it('trims comments around statements but keeps interior ones', () => {
    expect(texts('-- hello\nSELECT 1; -- trailing ; comment')).toEqual(['SELECT 1']);
    expect(texts('/* a */ SELECT /* b */ 1 /* c */; /* d */ SELECT 2 -- e')).toEqual([
      'SELECT /* b */ 1',
      'SELECT 2',
    ]);
    expect(texts('SELECT 1; /* trailing */')).toEqual(['SELECT 1']);
  });

  it('treats an unterminated block comment as running to the end', () => {
    expect(texts('SELECT 1 /* ; SELECT 2')).toEqual(['SELECT 1']);
    expect(countStatements('SELECT 1 /* ; SELECT 2')).toBe(1);
  });

  it('treats an unterminated string or identifier as the rest of the input', () => {
    expect(texts("SELECT 1; SELECT 'abc; SELECT 3")).toEqual(['SELECT 1', "SELECT 'abc; SELECT 3"]);
    expect(texts('SELECT "abc; SELECT 3')).toEqual(['SELECT "abc; SELECT 3']);
    expect(texts('SELECT `abc; SELECT 3')).toEqual(['SELECT `abc; SELECT 3']);
    expect(texts('SELECT [abc; SELECT 3')).toEqual(['SELECT [abc; SELECT 3']);
    expect(texts("SELECT 'it''s; SELECT 3")).toEqual(["SELECT 'it''s; SELECT 3"]);
  });

  it('handles blob literals', () => {
    expect(texts("SELECT x'3b3b'; SELECT X';'; SELECT 3")).toEqual([
      "SELECT x'3b3b'",
      "SELECT X';'",
      'SELECT 3',
    ]);
  });

  it('does not confuse parameters with keywords or quotes', () => {
    expect(texts('SELECT :end, @begin, $case, ?1; SELECT 2')).toEqual([
      'SELECT :end, @begin, $case, ?1',
      'SELECT 2',
    ]);
  });

  it('handles a dash or slash that does not start a comment', () => {
    expect(texts('SELECT 4-2; SELECT 4/2; SELECT -1')).toEqual(['SELECT 4-2', 'SELECT 4/2', 'SELECT -1']);
  });
});

describe('splitStatements: triggers', () => {
  it('keeps a trigger body with several statements together', () => {
    const trigger =
      'CREATE TRIGGER trg AFTER INSERT ON t BEGIN\n' +
      '  INSERT INTO log VALUES (new.id);\n' +
      "  UPDATE t SET note = 'x;y' WHERE id = new.id;\n" +
      '  DELETE FROM tmp;\n' +
      'END';
    expect(texts(`${trigger}; SELECT 1`)).toEqual([trigger, 'SELECT 1']);
    expect(splitStatements(trigger)[0]?.kind).toBe('ddl');
  });

  it('nests CASE ... END inside the body', () => {
    const trigger =
      'CREATE TRIGGER trg AFTER UPDATE ON t BEGIN ' +
      'UPDATE t SET v = CASE WHEN new.v > 0 THEN 1 ELSE CASE new.w WHEN 1 THEN 2 END END; ' +
      'SELECT CASE 1 WHEN 1 THEN 2 END; ' +
      'INSERT INTO log SELECT CASE WHEN 1 THEN 2 END FROM t; ' +
      'END';
    expect(texts(`SELECT 0; ${trigger}; SELECT 1; SELECT 2`)).toEqual([
      'SELECT 0',
      trigger,
      'SELECT 1',
      'SELECT 2',
    ]);
  });

  it('ignores CASE ... END in a WHEN clause before the body', () => {
    const trigger =
      'CREATE TRIGGER trg BEFORE INSERT ON t WHEN CASE new.a WHEN 1 THEN 1 ELSE 0 END ' +
      'BEGIN SELECT RAISE(ABORT, \'no;\'); END';
    expect(texts(`${trigger};SELECT 1`)).toEqual([trigger, 'SELECT 1']);
  });

  it('accepts TEMP/TEMPORARY, IF NOT EXISTS, any case, comments and EXPLAIN', () => {
    const triggers = [
      'CREATE TEMP TRIGGER a AFTER INSERT ON t BEGIN SELECT 1; SELECT 2; END',
      'create temporary trigger if not exists a after insert on t begin select 1; end',
      'CrEaTe /* ; */ TrIgGeR a AFTER DELETE ON t -- ;\n BeGiN select 1; -- ;\n eNd',
      'EXPLAIN CREATE TRIGGER a AFTER INSERT ON t BEGIN SELECT 1; END',
      'EXPLAIN QUERY PLAN CREATE TRIGGER a AFTER INSERT ON t BEGIN SELECT 1; END',
    ];
    for (const trigger of triggers) {
      expect(texts(`${trigger};\nSELECT 1;`)).toEqual([trigger, 'SELECT 1']);
    }
  });

  it('does not count quoted END or strings inside the body', () => {
    const trigger =
      'CREATE TRIGGER a AFTER INSERT ON t BEGIN UPDATE t SET "end" = \'END\', [case] = 1; END';
    expect(texts(`${trigger}; SELECT 1`)).toEqual([trigger, 'SELECT 1']);
  });

  it('treats an unterminated trigger body as the rest of the input', () => {
    const sql = 'CREATE TRIGGER a AFTER INSERT ON t BEGIN SELECT 1; SELECT 2;';
    expect(texts(sql)).toEqual(['CREATE TRIGGER a AFTER INSERT ON t BEGIN SELECT 1; SELECT 2;']);
  });

  it('does not treat other CREATE statements as triggers', () => {
    expect(texts('CREATE TABLE begin_x (a); BEGIN; END')).toEqual(['CREATE TABLE begin_x (a)', 'BEGIN', 'END']);
    expect(texts('CREATE VIEW v AS SELECT CASE 1 WHEN 1 THEN 2 END; SELECT 1')).toEqual([
      'CREATE VIEW v AS SELECT CASE 1 WHEN 1 THEN 2 END',
      'SELECT 1',
    ]);
  });

  it('agrees with SQLite when a script with triggers is run statement by statement', () => {
    const script = `
      CREATE TABLE t (id INTEGER PRIMARY KEY, v INT, note TEXT); -- comment ; here
      CREATE TABLE log (id INT, what TEXT);
      CREATE TRIGGER trg AFTER INSERT ON t BEGIN
        INSERT INTO log VALUES (new.id, CASE WHEN new.v > 1 THEN 'big;' ELSE 'small' END);
        UPDATE t SET note = 'seen' WHERE id = new.id;
      END;
      INSERT INTO t (v) VALUES (1), (5); /* ; */
      INSERT INTO t (v) VALUES ('a'';b');
    `;
    const expected = new Database(':memory:');
    expected.exec(script);
    const actual = new Database(':memory:');
    const stmts = splitStatements(script);
    expect(stmts).toHaveLength(5);
    for (const s of stmts) actual.prepare(s.sql).run();
    const dump = (db: Database.Database): unknown[] => [
      db.prepare('SELECT * FROM t ORDER BY id').all(),
      db.prepare('SELECT * FROM log ORDER BY id').all(),
    ];
    expect(dump(actual)).toEqual(dump(expected));
    expected.close();
    actual.close();
  });
});

describe('classifyStatement', () => {
  const cases: Array<[string, StmtKind]> = [
    ['BEGIN', 'begin'],
    ['COMMIT', 'commit'],
    ['COMMIT TRANSACTION', 'commit'],
    ['END', 'commit'],
    ['end transaction', 'commit'],
    ['ROLLBACK', 'rollback'],
    ['ROLLBACK TRANSACTION', 'rollback'],
    ['ROLLBACK TO sp1', 'rollback_to'],
    ['rollback to savepoint sp1', 'rollback_to'],
    ['ROLLBACK TRANSACTION TO SAVEPOINT "sp 1"', 'rollback_to'],
    ['SAVEPOINT sp1', 'savepoint'],
    ['RELEASE sp1', 'release'],
    ['RELEASE SAVEPOINT sp1', 'release'],
    ["ATTACH DATABASE 'x.db' AS x", 'attach'],
    ['DETACH x', 'detach'],
    ['SELECT 1', 'select'],
    ['select * from t', 'select'],
    ['VALUES (1), (2)', 'select'],
    ['WITH a AS (SELECT 1) SELECT * FROM a', 'select'],
    ['WITH RECURSIVE c(x) AS (VALUES (1) UNION ALL SELECT x + 1 FROM c) SELECT x FROM c', 'select'],
    ['WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a', 'dml'],
    ['WITH a AS (SELECT 1), b AS MATERIALIZED (SELECT 2) UPDATE t SET x = 1', 'dml'],
    ['with a(x) as (select 1) delete from t where x in a', 'dml'],
    ['WITH a AS (DELETE FROM t) REPLACE INTO t VALUES (1)', 'dml'],
    ['WITH', 'other'],
    ['EXPLAIN SELECT 1', 'explain'],
    ['EXPLAIN QUERY PLAN DELETE FROM t', 'explain'],
    ['PRAGMA journal_mode', 'pragma'],
    ['pragma foreign_keys = on', 'pragma'],
    ['CREATE TABLE t (a)', 'ddl'],
    ['CREATE INDEX i ON t (a)', 'ddl'],
    ['DROP TABLE t', 'ddl'],
    ['ALTER TABLE t ADD COLUMN b', 'ddl'],
    ['INSERT INTO t VALUES (1)', 'dml'],
    ['REPLACE INTO t VALUES (1)', 'dml'],
    ['UPDATE t SET a = 1', 'dml'],
    ['DELETE FROM t', 'dml'],
    ['VACUUM', 'other'],
    ['ANALYZE', 'other'],
    ['REINDEX', 'other'],
    ['', 'other'],
    ['(SELECT 1)', 'other'],
    ['"SELECT" 1', 'other'],
    ['SELECTX', 'other'],
  ];
  it.each(cases)('%j -> %s', (sql, kind) => {
    expect(classifyStatement(sql).kind).toBe(kind);
  });

  it('skips leading comments and whitespace', () => {
    expect(classifyStatement('  -- note\n /* x */ SELECT 1').kind).toBe('select');
    expect(classifyStatement('/* a */ /* b */ insert into t values (1)').kind).toBe('dml');
    expect(classifyStatement('-- c\nBEGIN IMMEDIATE -- d')).toEqual({
      sql: 'BEGIN IMMEDIATE',
      kind: 'begin',
      beginMode: 'immediate',
    });
  });

  it('trims whitespace, comments and semicolons from the returned text', () => {
    expect(classifyStatement('  SELECT 1 \n')).toEqual({ sql: 'SELECT 1', kind: 'select' });
    expect(classifyStatement('; /* x */ SELECT 1; -- y')).toEqual({ sql: 'SELECT 1', kind: 'select' });
    expect(classifyStatement(' -- only\n ; ')).toEqual({ sql: '', kind: 'other' });
    const trigger = 'CREATE TRIGGER a AFTER INSERT ON t BEGIN SELECT 1; END';
    expect(classifyStatement(`  ${trigger};\n`)).toEqual({ sql: trigger, kind: 'ddl' });
  });

  it('sets beginMode only for BEGIN', () => {
    expect('beginMode' in classifyStatement('COMMIT')).toBe(false);
  });
});

describe('begin modes', () => {
  const modes: Array<[string, BeginMode]> = [
    ['BEGIN', 'deferred'],
    ['begin', 'deferred'],
    ['BEGIN TRANSACTION', 'deferred'],
    ['BEGIN TRANSACTION tx1', 'deferred'],
    ['BEGIN DEFERRED', 'deferred'],
    ['BEGIN DEFERRED TRANSACTION', 'deferred'],
    ['BEGIN IMMEDIATE', 'immediate'],
    ['begin immediate transaction', 'immediate'],
    ['BEGIN EXCLUSIVE', 'exclusive'],
    ['BEGIN EXCLUSIVE TRANSACTION "my tx"', 'exclusive'],
    ['BEGIN READONLY', 'readonly'],
    ['begin readonly', 'readonly'],
    ['BEGIN TRANSACTION READONLY', 'readonly'],
    ['Begin Transaction ReadOnly', 'readonly'],
    ['BEGIN /* c */ TRANSACTION -- c\n READONLY', 'readonly'],
    ['BEGIN READONLY TRANSACTION', 'readonly'],
    ['BEGIN;', 'deferred'],
  ];
  it.each(modes)('%j -> %s', (sql, mode) => {
    expect(parseBeginMode(sql)).toBe(mode);
    expect(classifyStatement(sql)).toMatchObject({ kind: 'begin', beginMode: mode });
  });

  it('treats a quoted READONLY or an explicit mode plus READONLY as a transaction name', () => {
    expect(parseBeginMode('BEGIN TRANSACTION "READONLY"')).toBe('deferred');
    expect(parseBeginMode('BEGIN IMMEDIATE TRANSACTION READONLY')).toBe('immediate');
  });

  it('returns undefined for non-BEGIN or malformed statements', () => {
    expect(parseBeginMode('SELECT 1')).toBeUndefined();
    expect(parseBeginMode('')).toBeUndefined();
    expect(parseBeginMode('COMMIT')).toBeUndefined();
    expect(parseBeginMode('BEGIN foo')).toBeUndefined();
    expect(parseBeginMode('BEGIN TRANSACTION a b')).toBeUndefined();
    expect(parseBeginMode('BEGIN IMMEDIATE EXCLUSIVE')).toBeUndefined();
    expect(parseBeginMode('BEGIN; SELECT 1')).toBeUndefined();
    // Still classified as a BEGIN (SQLite will report the syntax error).
    expect(classifyStatement('BEGIN foo')).toMatchObject({ kind: 'begin', beginMode: 'deferred' });
  });

  it('is reported through splitStatements', () => {
    expect(splitStatements('BEGIN TRANSACTION READONLY; SELECT 1; END').map((s) => [s.kind, s.beginMode])).toEqual([
      ['begin', 'readonly'],
      ['select', undefined],
      ['commit', undefined],
    ]);
  });
});

describe('countStatements', () => {
  it('counts non-empty statements, stopping at 2', () => {
    expect(countStatements('')).toBe(0);
    expect(countStatements(' ;; -- x\n/* y */ ;')).toBe(0);
    expect(countStatements('SELECT 1')).toBe(1);
    expect(countStatements('SELECT 1;')).toBe(1);
    expect(countStatements("SELECT ';'; -- ; comment")).toBe(1);
    expect(countStatements('CREATE TRIGGER a AFTER INSERT ON t BEGIN SELECT 1; SELECT 2; END;')).toBe(1);
    expect(countStatements('SELECT 1; SELECT 2')).toBe(2);
    expect(countStatements('SELECT 1; SELECT 2; SELECT 3; SELECT 4')).toBe(2);
  });
});

describe('property: join then split', () => {
  const samples = [
    'SELECT 1',
    "SELECT 'a;b', \"c;d\", [e;f], `g;h`",
    "INSERT INTO t VALUES ('it''s; ok', x'00ff')",
    'SELECT 1 /* ; */ + 2',
    'SELECT 1 -- trailing ; comment\n+ 2',
    'UPDATE /* ; */ t -- comment;\n SET a = 1',
    'CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT CASE WHEN 1 THEN 2 END; DELETE FROM u; END',
    'CREATE TEMP TRIGGER tr2 BEFORE DELETE ON t WHEN CASE 1 WHEN 1 THEN 1 END BEGIN SELECT 1; END',
    'BEGIN TRANSACTION READONLY',
    'BEGIN IMMEDIATE',
    'COMMIT',
    'ROLLBACK TO SAVEPOINT s',
    'WITH a AS (SELECT 1) DELETE FROM t WHERE x IN a',
    'PRAGMA table_info("t;x")',
    "ATTACH 'f;.db' AS f",
    'END',
    'SELECT :a, @b, $c, ?4',
  ];
  const separators = [';', ' ;', ';\n', ' ; ; ', ';-- c ; c\n', '; /* ; */ ', ';\n\n;\t'];

  it('round-trips every ordered pair of samples', () => {
    for (const a of samples) {
      for (const b of samples) {
        expect(texts(`${a};${b}`)).toEqual([a, b]);
        expect(countStatements(`${a};${b}`)).toBe(2);
      }
    }
  });

  it('round-trips random sequences with random separators', () => {
    const sample = fc.constantFrom(...samples);
    const sep = fc.constantFrom(...separators);
    fc.assert(
      fc.property(fc.array(fc.tuple(sample, sep), { maxLength: 12 }), fc.boolean(), (parts, leading) => {
        const sql = (leading ? '; ' : '') + parts.map(([s, p]) => s + p).join('');
        const out = splitStatements(sql);
        expect(out.map((s) => s.sql)).toEqual(parts.map(([s]) => s));
        expect(out.map((s) => s.kind)).toEqual(parts.map(([s]) => classifyStatement(s).kind));
        expect(countStatements(sql)).toBe(Math.min(parts.length, 2));
      }),
    );
  });

  it('never throws on arbitrary input and agrees with countStatements', () => {
    const alphabet = fc.constantFrom(..."ab ;'\"`[]-/*\nxCASEENDBEGINTRIGGERCREATE:?$".split(''));
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 80 }), (chars) => {
        const sql = chars.join('');
        const out = splitStatements(sql);
        expect(countStatements(sql)).toBe(Math.min(out.length, 2));
        for (const s of out) expect(s.sql.length).toBeGreaterThan(0);
      }),
    );
  });
});
