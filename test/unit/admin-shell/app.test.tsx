import { cleanup, render } from 'ink-testing-library';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { AdminClient } from '../../../src/shell/api/admin-client.js';
import { SqlClient } from '../../../src/shell/api/sql-client.js';
import { App } from '../../../src/shell/app.js';
import { ADMIN_KEY, createNamespace, startAdminServer, type AdminTestServer } from '../../helpers/admin.js';
import { closedLoopbackPort } from '../../helpers/free-port.js';

/**
 * The whole admin shell under ink-testing-library, driven by keys, against a real server (namespaces
 * enabled, admin API on a free loopback port behind a key). Frames are polled until the expected
 * text appears (bounded), never slept for.
 */

const KEYS = { enter: '\r', escape: '\u001B', up: '\u001B[A', down: '\u001B[B', pageUp: '\u001B[5~', pageDown: '\u001B[6~' };
const REFRESH_MS = 100;

let srv: AdminTestServer;

beforeAll(async () => {
  srv = await startAdminServer();
  await createNamespace(srv, 'books');
  await createNamespace(srv, 'scratch');
  const c = srv.client('books');
  await c.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, title TEXT)');
  await c.execute("INSERT INTO t (title) VALUES ('Dune'), ('Emma')");
});

afterEach(cleanup);
afterAll(async () => {
  await srv?.close();
});

function shell(opts: { authKey?: string; adminUrl?: string; sql?: boolean; namespace?: string } = {}) {
  const admin = new AdminClient({ baseUrl: opts.adminUrl ?? srv.adminUrl, authKey: 'authKey' in opts ? opts.authKey : ADMIN_KEY });
  const sql = opts.sql === false ? null : new SqlClient({ baseUrl: srv.url });
  const ui = render(<App admin={admin} sql={sql} refreshMs={REFRESH_MS} initialNamespace={opts.namespace} />);
  const frame = (): string => ui.lastFrame() ?? '';
  const waitFor = (what: string | RegExp, timeout = 5000): Promise<void> =>
    vi.waitFor(() => (typeof what === 'string' ? expect(frame()).toContain(what) : expect(frame()).toMatch(what)), { timeout, interval: 10 });
  const press = (...keys: string[]): void => {
    for (const k of keys) ui.stdin.write(k);
  };
  return { ui, frame, waitFor, press };
}

describe('admin shell (App)', () => {
  it('lists the server\'s namespaces and refreshes on its own', async () => {
    const s = shell();
    await s.waitFor(/› books/);
    expect(s.frame()).toMatch(/scratch/);
    expect(s.frame()).toMatch(/default/);
    await createNamespace(srv, 'later');
    await s.waitFor('later');
    await srv.admin('DELETE', '/v1/namespaces/later');
    await vi.waitFor(() => expect(s.frame()).not.toContain('later'), { timeout: 5000, interval: 10 });
  });

  it('detail view: blocks writes with a reason, shows it, unblocks', async () => {
    const s = shell();
    await s.waitFor(/› books/);
    s.press(KEYS.enter);
    await s.waitFor(/max_db_size\s+17\.6 TB/);
    s.press('w');
    await s.waitFor('reason for blocking writes');
    s.press('nightly import', KEYS.enter);
    await s.waitFor(/blocked\s+writes blocked — nightly import/);
    const cfg = await srv.admin('GET', '/v1/namespaces/books/config');
    expect(cfg.json).toMatchObject({ block_writes: true, block_reason: 'nightly import' });
    s.press('m');
    await s.waitFor('max_db_size (e.g.');
    s.press('10MB', KEYS.enter);
    await s.waitFor(/max_db_size\s+10\.0 MB/);
    s.press('u');
    await s.waitFor(/blocked\s+no/);
    s.press(KEYS.escape);
    await s.waitFor(/namespace\s+size/);
  });

  it('SQL console: runs a query, shows its rows, keeps a history', async () => {
    const s = shell();
    await s.waitFor(/› books/);
    s.press('s');
    await s.waitFor('SQL console · books');
    s.press('SELECT id, title FROM t ORDER BY id', KEYS.enter);
    await s.waitFor(/1\s+│ Dune/);
    expect(s.frame()).toMatch(/2\s+│ Emma/);
    expect(s.frame()).toContain('rows 1–2 of 2');
    s.press('WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100) SELECT x FROM c', KEYS.enter);
    await s.waitFor('rows 1–12 of 100 · PgUp/PgDn scroll');
    s.press(KEYS.pageDown);
    await s.waitFor('rows 13–24 of 100');
    expect(s.frame()).toMatch(/^13\s*$/m);
    s.press(KEYS.pageUp);
    await s.waitFor('rows 1–12 of 100');
    s.press('SELEC nonsense', KEYS.enter);
    await s.waitFor('error SQL_PARSE_ERROR');
    s.press(KEYS.up, KEYS.up, KEYS.up);
    await s.waitFor('books> SELECT id, title FROM t ORDER BY id');
    s.press(KEYS.down);
    await s.waitFor('books> WITH RECURSIVE');
    s.press(KEYS.down);
    await s.waitFor('books> SELEC nonsense');
    s.press(KEYS.down);
    await vi.waitFor(() => expect(s.frame()).toMatch(/^books>\s*$/m), { timeout: 5000, interval: 10 });
    s.press(KEYS.escape);
    await s.waitFor(/namespace\s+size/);
  });

  it('--namespace opens its console; without --http-url it says how to enable it', async () => {
    const s = shell({ sql: false, namespace: 'books' });
    await s.waitFor('start admin-shell with --http-url');
  });

  it('delete asks first; create and fork answer with the outcome', async () => {
    const s = shell();
    await s.waitFor(/› books/);
    s.press('c');
    await s.waitFor('name of the new namespace');
    s.press('made-here', KEYS.enter);
    await s.waitFor('created made-here');
    await s.waitFor(/› made-here/);
    s.press(KEYS.enter);
    await s.waitFor('namespace made-here');
    s.press('d');
    await s.waitFor('delete namespace made-here and its data? [y/N]');
    s.press('n');
    await vi.waitFor(() => expect(s.frame()).not.toContain('[y/N]'), { timeout: 5000, interval: 10 });
    s.press('f');
    await s.waitFor('fork made-here into');
    s.press('made-copy', KEYS.enter);
    await s.waitFor('forked made-here into made-copy');
    s.press('d');
    await s.waitFor('[y/N]');
    s.press('y');
    await s.waitFor('deleted made-here');
    const names = ((await srv.admin('GET', '/v1/namespaces')).json as { name: string }[]).map((n) => n.name);
    expect(names).not.toContain('made-here');
    if (names.includes('made-copy')) await srv.admin('DELETE', '/v1/namespaces/made-copy');
  });

  it('shows a wrong key (401) and keeps retrying', async () => {
    const s = shell({ authKey: 'wrong' });
    await s.waitFor('wrong or missing admin key (401)');
    await s.waitFor(/\(([3-9]|\d\d+) failed\)/);
  });

  it('shows an unreachable admin API and keeps retrying', async () => {
    const port = await closedLoopbackPort();
    const s = shell({ adminUrl: `http://127.0.0.1:${port}` });
    await s.waitFor(`cannot reach the admin API at http://127.0.0.1:${port}: ECONNREFUSED`);
    await s.waitFor(/\(([3-9]|\d\d+) failed\)/);
    expect(s.frame()).toContain('waiting for the first answer');
  });

  it('? shows the keys, Esc closes them', async () => {
    const s = shell();
    await s.waitFor(/› books/);
    s.press('?');
    await s.waitFor('show or hide these keys');
    s.press(KEYS.escape);
    await s.waitFor(/namespace\s+size/);
  });
});
