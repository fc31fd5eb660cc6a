import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postJson, startTestServer, tempDir, type TestServer } from '../helpers/test-server.js';

/**
 * `serve --enable-http-console` (docs/CONSOLE.md): the page's headers over plain HTTP, then the page
 * itself in a real headless Chromium against a real server.
 */

const BASIC = Buffer.from('user:pass').toString('base64');

/** Debian's chromium, or CHROMIUM_PATH: the test fails (never skips) without one. */
function chromiumPath(): string {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium'].filter((p): p is string => p !== undefined && p !== '');
  const found = candidates.find((p) => fs.existsSync(p));
  if (found === undefined) {
    throw new Error(`No Chromium for the console e2e test (looked at ${candidates.join(', ')}): install Debian's chromium (.ci/run does) or set CHROMIUM_PATH.`);
  }
  return found;
}

/** Chromium on a closed network: nothing of its own to fetch, no sandbox (root in CI), a fresh profile. */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

interface Cell {
  text: string | null;
  cls: string;
}

interface Block {
  stmt: string | null;
  error: string | null;
  summary: string | null;
  notRun: boolean;
  headers: string[];
  rows: Cell[][];
}

/*
 * Code run in the page is passed as source text: this project's TypeScript has no DOM types.
 */

const IN_PAGE_CSP_RECORDER = `
  window.__csp = [];
  document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
`;

/** The blocks of the output: statement text, error, summary, "not run", table headers and cells. */
const IN_PAGE_BLOCKS = `[...document.querySelectorAll('#output .result')].map((b) => ({
  stmt: b.querySelector('.stmt')?.textContent ?? null,
  error: b.querySelector('.error')?.textContent ?? null,
  summary: b.querySelector('.summary')?.textContent ?? null,
  notRun: b.querySelector('.not-run') !== null,
  headers: [...b.querySelectorAll('table th')].map((th) => th.textContent),
  rows: [...b.querySelectorAll('table tbody tr')].map((tr) => [...tr.children].map((td) => ({ text: td.textContent, cls: td.className }))),
}))`;

const inPage = <T>(page: Page, expression: string): Promise<T> => page.evaluate<T>(expression);
const blocks = (page: Page): Promise<Block[]> => inPage(page, IN_PAGE_BLOCKS);
const cspViolations = (page: Page): Promise<string[]> => inPage(page, 'window.__csp');

const sha256 = (s: string): string => createHash('sha256').update(s, 'utf8').digest('base64');

let srv: TestServer;
let authSrv: TestServer;
let userDataDir: string;
let context: BrowserContext;

beforeAll(async () => {
  const executablePath = chromiumPath();
  srv = await startTestServer({ 'enable-http-console': true });
  authSrv = await startTestServer({ 'enable-http-console': true, 'http-auth': `basic:${BASIC}` });
  userDataDir = tempDir('libsqlctl-chromium-');
  context = await chromium.launchPersistentContext(userDataDir, { executablePath, headless: true, args: CHROMIUM_ARGS, timeout: 15_000 });
  context.setDefaultTimeout(5_000);
  // Every Content-Security-Policy violation the page causes (a hash that does not match its code, say).
  await context.addInitScript({ content: IN_PAGE_CSP_RECORDER });
});

afterAll(async () => {
  await context?.close();
  if (userDataDir !== undefined) fs.rmSync(userDataDir, { recursive: true, force: true });
  await srv?.close();
  await authSrv?.close();
});

async function openConsole(url: string): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${url}/console`);
  await page.waitForSelector('#output[data-state="ready"]', { state: 'attached' });
  return page;
}

/** Types the SQL, runs it (button or Ctrl+Enter) and waits until the output is rendered. */
async function runSql(page: Page, sql: string, how: 'click' | 'keys' = 'click'): Promise<void> {
  await page.fill('#sql', sql);
  if (how === 'click') await page.click('#run');
  else await page.press('#sql', 'Control+Enter');
  // The click handler marks the output "running" before its first await, so "done" is this run's.
  await page.waitForSelector('#output[data-state="done"]', { state: 'attached' });
}

describe('GET /console', () => {
  it('is 404 without --enable-http-console, and a locked-down HTML page with it', async () => {
    const off = await startTestServer();
    try {
      const res = await fetch(`${off.url}/console`);
      expect(res.status).toBe(404);
    } finally {
      await off.close();
    }
    const res = await fetch(`${srv.url}/console`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).not.toMatch(/unsafe-|\*|https?:/);
    // The policy allows exactly the page's own inline script and style, and the page loads nothing else.
    const html = await res.text();
    const script = /<script>([\s\S]*)<\/script>/.exec(html)?.[1];
    const style = /<style>([\s\S]*)<\/style>/.exec(html)?.[1];
    expect(script).toBeDefined();
    expect(style).toBeDefined();
    expect(csp).toContain(`script-src 'sha256-${sha256(script!)}'`);
    expect(csp).toContain(`style-src 'sha256-${sha256(style!)}'`);
    expect(html).not.toMatch(/\ssrc=|\shref=|@import|url\(/);
    // The page itself needs no credentials, even on a server that requires them.
    expect((await fetch(`${authSrv.url}/console`)).status).toBe(200);
  });
});

describe('the console in Chromium', () => {
  it('runs several statements in one go and shows each result', async () => {
    const page = await openConsole(srv.url);
    await runSql(page, "CREATE TABLE t(a INTEGER, b TEXT); INSERT INTO t VALUES (1,'x;y'),(2,NULL); SELECT a, b FROM t ORDER BY a;");
    const out = await blocks(page);
    expect(out.map((b) => b.stmt)).toEqual(['CREATE TABLE t(a INTEGER, b TEXT)', "INSERT INTO t VALUES (1,'x;y'),(2,NULL)", 'SELECT a, b FROM t ORDER BY a']);
    expect(out.map((b) => b.error)).toEqual([null, null, null]);
    expect(out[1]!.summary).toMatch(/^2 rows affected\b/);
    expect(out[1]!.summary).toContain('last_insert_rowid 2');
    expect(out[2]!.headers).toEqual(['a', 'b']);
    expect(out[2]!.rows).toEqual([
      [
        { text: '1', cls: 'integer' },
        { text: 'x;y', cls: 'text' },
      ],
      [
        { text: '2', cls: 'integer' },
        { text: 'NULL', cls: 'null' },
      ],
    ]);
    expect(out[2]!.summary).toBe('2 rows');
    expect(await page.textContent('#status')).toMatch(/^3 statements · \d+ ms$/);
    expect(await cspViolations(page)).toEqual([]);
    // The page's stylesheet applied (a blocked one would leave the button unstyled).
    expect(await inPage(page, "getComputedStyle(document.getElementById('run')).borderRadius")).toBe('6px');
    // The rows are on the server.
    const r = await postJson(`${srv.url}/v2/pipeline`, { baton: null, requests: [{ type: 'execute', stmt: { sql: 'SELECT a, b FROM t ORDER BY a' } }, { type: 'close' }] });
    expect(r.status, r.text).toBe(200);
    expect((r.body as { results: { response: { result: { rows: unknown } } }[] }).results[0]!.response.result.rows).toEqual([
      [
        { type: 'integer', value: '1' },
        { type: 'text', value: 'x;y' },
      ],
      [{ type: 'integer', value: '2' }, { type: 'null' }],
    ]);
    await page.close();
  });

  it('stops at the first failing statement and marks the rest "not run" (Ctrl+Enter)', async () => {
    const page = await openConsole(srv.url);
    await runSql(page, 'SELECT 1; SELECT * FROM missing_table; SELECT 3;', 'keys');
    const out = await blocks(page);
    expect(out).toHaveLength(3);
    expect(out[0]!.rows).toEqual([[{ text: '1', cls: 'integer' }]]);
    expect(out[1]!.error).toMatch(/^SQLITE_\w+.*no such table: missing_table/);
    expect(out[1]!.rows).toEqual([]);
    expect(out[2]!.notRun).toBe(true);
    expect(out[2]!.error).toBeNull();
    expect(out[2]!.rows).toEqual([]);
    expect(await page.textContent('#status')).toMatch(/failed/);
    await page.close();
  });

  it('renders row values as text, never as markup', async () => {
    const page = await openConsole(srv.url);
    const evil = '<img src=x onerror="window.__xss=1">';
    await runSql(page, `CREATE TABLE h(v); INSERT INTO h VALUES ('${evil}'), (x'00ff10'); SELECT v AS "<b>col</b>" FROM h ORDER BY rowid;`);
    const out = await blocks(page);
    expect(out[2]!.headers).toEqual(['<b>col</b>']);
    expect(out[2]!.rows).toEqual([[{ text: evil, cls: 'text' }], [{ text: "x'00ff10'", cls: 'blob' }]]);
    expect(await page.$$('#output img, #output th b')).toHaveLength(0);
    expect(await inPage(page, "typeof window.__xss")).toBe('undefined');
    await page.close();
  });

  it('splits at semicolons outside quotes, comments and trigger bodies', async () => {
    const page = await openConsole(srv.url);
    const split = (sql: string): Promise<string[]> => inPage(page, `window.libsqlctlConsole.splitSql(${JSON.stringify(sql)})`);
    expect(await split("SELECT 'a;b', \"c;d\", `e;f`, [g;h]; -- x;y\nSELECT /* ; */ 2;;  -- only a comment;")).toEqual([
      "SELECT 'a;b', \"c;d\", `e;f`, [g;h]",
      '-- x;y\nSELECT /* ; */ 2',
    ]);
    expect(await split("SELECT 'it''s;'; BEGIN; SELECT 1; END")).toEqual(["SELECT 'it''s;'", 'BEGIN', 'SELECT 1', 'END']);
    const trigger =
      'CREATE TEMP TRIGGER tr AFTER INSERT ON l BEGIN INSERT INTO m VALUES (new.x); UPDATE m SET y = CASE WHEN y > 9 THEN 0 ELSE y END; END';
    expect(await split(`CREATE TABLE l(x); ${trigger}; SELECT 1`)).toEqual(['CREATE TABLE l(x)', trigger, 'SELECT 1']);
    // The server takes the trigger as one statement.
    await runSql(page, 'CREATE TABLE l(x); CREATE TABLE m(y); CREATE TRIGGER tr AFTER INSERT ON l BEGIN INSERT INTO m VALUES (new.x); UPDATE m SET y = y + 1; END; INSERT INTO l VALUES (5); SELECT y FROM m;');
    const out = await blocks(page);
    expect(out.map((b) => b.error)).toEqual([null, null, null, null, null]);
    expect(out[4]!.rows).toEqual([[{ text: '6', cls: 'integer' }]]);
    await page.close();
  });

  it('sends the Authorization and namespace fields as headers, and shows a 401 without them', async () => {
    const page = await openConsole(authSrv.url);
    await runSql(page, 'SELECT 42 AS answer;');
    const denied = await blocks(page);
    expect(denied).toHaveLength(1);
    expect(denied[0]!.error).toMatch(/^HTTP 401: Unauthorized/);

    await page.fill('#auth', `Basic ${BASIC}`);
    await page.fill('#namespace', 'default');
    const request = page.waitForRequest((r) => r.url().endsWith('/v2/pipeline'));
    await runSql(page, 'SELECT 42 AS answer;');
    const headers = (await request).headers();
    expect(headers.authorization).toBe(`Basic ${BASIC}`);
    expect(headers['x-namespace']).toBe('default');
    const ok = await blocks(page);
    expect(ok[0]!.error).toBeNull();
    expect(ok[0]!.headers).toEqual(['answer']);
    expect(ok[0]!.rows).toEqual([[{ text: '42', cls: 'integer' }]]);
    // The credential stays in this tab's sessionStorage: a reload keeps it, nothing else stores it.
    await page.reload();
    await page.waitForSelector('#output[data-state="ready"]', { state: 'attached' });
    expect(await page.inputValue('#auth')).toBe(`Basic ${BASIC}`);
    expect(await inPage(page, 'localStorage.length')).toBe(0);
    await page.close();
  });
});
