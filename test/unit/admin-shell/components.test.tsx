import { render } from 'ink-testing-library';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup } from 'ink-testing-library';
import { AdminApiError, type NamespaceSummary } from '../../../src/shell/api/admin-client.js';
import { Header } from '../../../src/shell/components/header.js';
import { HelpScreen } from '../../../src/shell/components/help-screen.js';
import { NamespaceDetail } from '../../../src/shell/components/namespace-detail.js';
import { NamespaceList } from '../../../src/shell/components/namespace-list.js';
import { ResultsTable } from '../../../src/shell/components/results-table.js';
import { SqlConsole } from '../../../src/shell/components/sql-console.js';

/** The admin shell's components render from props alone. */

afterEach(cleanup);

const ns = (name: string, over: Partial<NamespaceSummary> = {}): NamespaceSummary => ({
  name,
  open: true,
  storageBytesUsed: 8192,
  maxDbSizeBytes: null,
  rowsReadCount: 1234,
  rowsWrittenCount: 5,
  queryCount: 9,
  replicationIndex: 4,
  blockReads: false,
  blockWrites: false,
  blockReason: null,
  configVersion: 1,
  backupLagFrames: null,
  ...over,
});

describe('NamespaceList', () => {
  it('shows each namespace with size, counters, replication index, backup lag and blocked state', () => {
    const { lastFrame } = render(<NamespaceList namespaces={[ns('books', { blockWrites: true, backupLagFrames: 12 }), ns('default', { replicationIndex: null })]} selected={1} height={10} width={100} />);
    const lines = lastFrame()!.split('\n');
    expect(lines[0]).toMatch(/namespace\s+size\s+rows read\s+rows written\s+repl index\s+backup lag\s+blocked/);
    expect(lines[1]).toMatch(/^\s+books\s+8\.0 KiB\s+1,234\s+5\s+4\s+12 fr\s+writes/);
    expect(lines[2]).toMatch(/^› default\s+8\.0 KiB\s+1,234\s+5\s+–\s+–/);
  });

  it('keeps the selected row in view and says which rows are shown', () => {
    const many = Array.from({ length: 30 }, (_, i) => ns(`ns${String(i).padStart(2, '0')}`));
    const frame = render(<NamespaceList namespaces={many} selected={25} height={6} width={100} />).lastFrame()!;
    expect(frame).toContain('› ns25');
    expect(frame).not.toContain('ns00');
    expect(frame).toContain('23–26 of 30');
    expect(frame.split('\n')).toHaveLength(6);
  });

  it('says when nothing came yet, and when there is nothing', () => {
    expect(render(<NamespaceList namespaces={null} selected={0} height={5} width={80} />).lastFrame()).toContain('waiting for the first answer');
    expect(render(<NamespaceList namespaces={[]} selected={0} height={5} width={80} />).lastFrame()).toContain('no namespaces');
  });
});

describe('Header', () => {
  it('names a refused key and an unreachable API, and that it keeps retrying', () => {
    const since = new Date();
    const unauthorized = new AdminApiError('ADMIN_UNAUTHORIZED', 'refused', 401);
    const f1 = render(<Header adminUrl="http://127.0.0.1:9" screen="namespaces" connection={{ state: 'error', error: unauthorized, since, failures: 3 }} refreshSeconds={2} />).lastFrame()!;
    expect(f1).toContain('wrong or missing admin key (401)');
    expect(f1).toContain('retrying every 2 s (3 failed)');
    const away = new AdminApiError('ADMIN_UNREACHABLE', 'cannot reach the admin API at http://127.0.0.1:9: ECONNREFUSED', null);
    const f2 = render(<Header adminUrl="http://127.0.0.1:9" screen="namespaces" connection={{ state: 'error', error: away, since, failures: 1 }} refreshSeconds={2} />).lastFrame()!;
    expect(f2).toContain('cannot reach the admin API at http://127.0.0.1:9: ECONNREFUSED');
    expect(render(<Header adminUrl="u" screen="s" connection={{ state: 'connecting' }} refreshSeconds={2} />).lastFrame()).toContain('connecting');
  });
});

describe('ResultsTable', () => {
  const columns = ['id', 'name'];
  const rows = Array.from({ length: 50 }, (_, i) => [String(i + 1), i % 2 === 0 ? `name ${i + 1}` : null]);

  it('shows a page of rows from the scroll position, NULL for null', () => {
    const frame = render(<ResultsTable columns={columns} rows={rows} scroll={10} height={8} width={60} />).lastFrame()!;
    const lines = frame.split('\n');
    expect(lines[0]).toMatch(/^id\s+│ name/);
    expect(lines[2]).toMatch(/^11\s+│ name 11/);
    expect(lines[3]).toMatch(/^12\s+│ NULL/);
    expect(frame).toContain('rows 11–15 of 50 · PgUp/PgDn scroll');
    expect(frame).not.toContain('name 9 ');
  });

  it('cuts wide cells to the width', () => {
    const frame = render(<ResultsTable columns={['t']} rows={[['x'.repeat(200)]]} scroll={0} height={5} width={30} />).lastFrame()!;
    expect(frame.split('\n').every((l) => l.length <= 30)).toBe(true);
    expect(frame).toContain('…');
  });
});

describe('SqlConsole and the other screens', () => {
  it('explains how to enable the console without --http-url', () => {
    const frame = render(<SqlConsole namespace="books" httpUrl={null} input="" running={false} last={null} scroll={0} height={20} width={100} />).lastFrame()!;
    expect(frame).toContain('--http-url');
  });

  it('shows an error result in full', () => {
    const last = { sql: 'SELEC 1', namespace: 'books', result: { kind: 'error' as const, message: 'SQL string could not be parsed: near SELEC', code: 'SQL_PARSE_ERROR' } };
    const frame = render(<SqlConsole namespace="books" httpUrl="http://127.0.0.1:8080" input="" running={false} last={last} scroll={0} height={20} width={100} />).lastFrame()!;
    expect(frame).toContain('error SQL_PARSE_ERROR: SQL string could not be parsed: near SELEC');
  });

  it('detail view: blocked state with its reason, limits', () => {
    const config = { block_reads: false, block_writes: true, block_reason: 'migration', max_db_size: '10.0 MB', heartbeat_url: null, jwt_key: null, allow_attach: false, txn_timeout_s: 7, durability_mode: 'relaxed', config_version: 3 };
    const frame = render(<NamespaceDetail name="books" summary={null} config={config} stats={null} error={null} width={100} height={30} />).lastFrame()!;
    expect(frame).toMatch(/blocked\s+writes blocked — migration/);
    expect(frame).toMatch(/max_db_size\s+10\.0 MB/);
    expect(frame).toMatch(/txn_timeout_s\s+7/);
  });

  it('help lists the keys', () => {
    const frame = render(<HelpScreen />).lastFrame()!;
    for (const k of ['?', 'q', 'Enter', 'checkpoint', 'fork', 'delete', 'history', 'PgUp/PgDn']) expect(frame).toContain(k);
  });
});
