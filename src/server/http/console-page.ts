/**
 * The web SQL console served at `GET /console` with `--enable-http-console` (routes/console.ts,
 * docs/CONSOLE.md): one self-contained page, no build step and no external resources. Its style and
 * script are separate constants so the route can allow exactly them by hash in its
 * Content-Security-Policy. They are `String.raw` templates: backslashes reach the browser verbatim,
 * and neither may contain a backtick or a dollar-brace (written `\x60` in the script instead).
 *
 * The script splits the SQL text into statements (`splitSql`, limits in docs/CONSOLE.md), sends them
 * as one Hrana batch to `v2/pipeline` (each step conditioned on the previous one succeeding) and
 * renders every value with textContent only.
 */

export const CONSOLE_STYLE = String.raw`
:root { color-scheme: light dark; --fg: #1d2125; --muted: #68707a; --bg: #fff; --panel: #f5f6f8; --line: #d8dce1;
  --accent: #2b62d9; --err: #b3261e; --err-bg: #fdeceb; --null: #8a8f98; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e4e6ea; --muted: #9aa1ab; --bg: #16181b; --panel: #1f2226; --line: #363a40;
    --accent: #6f9bff; --err: #ff8a80; --err-bg: #3a1f1e; --null: #7d838c; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg); font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 16px; }
h1 { font-size: 1.25rem; margin: 0 0 12px; }
label { display: block; font-size: 0.85rem; color: var(--muted); }
textarea, input { width: 100%; margin-top: 4px; padding: 8px; border: 1px solid var(--line); border-radius: 6px;
  background: var(--bg); color: var(--fg); font: 14px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
textarea { min-height: 9em; resize: vertical; }
textarea:focus, input:focus { outline: 2px solid var(--accent); outline-offset: -1px; }
.options { display: grid; grid-template-columns: 2fr 1fr; gap: 12px; margin-top: 10px; }
.actions { display: flex; align-items: center; gap: 12px; margin: 12px 0; flex-wrap: wrap; }
button { padding: 7px 18px; border: 0; border-radius: 6px; background: var(--accent); color: #fff; font: inherit; cursor: pointer; }
button:disabled { opacity: 0.6; cursor: progress; }
.hint, #status { color: var(--muted); font-size: 0.85rem; }
.result { border: 1px solid var(--line); border-radius: 6px; margin: 0 0 12px; overflow: hidden; }
.stmt { margin: 0; padding: 6px 10px; background: var(--panel); border-bottom: 1px solid var(--line);
  font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; white-space: pre-wrap; overflow-wrap: anywhere; }
.summary, .not-run, .error { padding: 6px 10px; font-size: 0.85rem; }
.summary, .not-run { color: var(--muted); }
.not-run { font-style: italic; }
.error { color: var(--err); background: var(--err-bg); white-space: pre-wrap; overflow-wrap: anywhere; }
.error .code { font-weight: 600; margin-right: 0.5em; }
.table-wrap { overflow-x: auto; max-height: 60vh; }
table { border-collapse: collapse; font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top;
  white-space: pre-wrap; overflow-wrap: break-word; max-width: 60ch; }
th { position: sticky; top: 0; background: var(--panel); font-weight: 600; }
td.null { color: var(--null); font-style: italic; white-space: nowrap; }
td.integer, td.float { text-align: right; white-space: nowrap; }
td.text { min-width: 16ch; }
td.blob { color: var(--muted); }
@media (max-width: 640px) {
  main { padding: 10px; }
  .options { grid-template-columns: 1fr; }
}
`;

export const CONSOLE_SCRIPT = String.raw`
'use strict';
(() => {
  const AUTH_KEY = 'libsqlctl-console-authorization';
  const NS_KEY = 'libsqlctl-console-namespace';
  const MAX_ROWS = 1000;
  const BLOB_BYTES = 32;
  const STMT_CHARS = 300;
  const $ = (id) => document.getElementById(id);
  const sqlEl = $('sql'), authEl = $('auth'), nsEl = $('namespace'), runEl = $('run'), statusEl = $('status'), outEl = $('output');

  // Splits SQL text at semicolons outside quotes ('..', "..", \x60..\x60, [..]) and comments (-- and /* */).
  // In a statement starting CREATE [TEMP|TEMPORARY] TRIGGER, BEGIN and CASE open and END closes a
  // block, and a semicolon inside a block does not split. Statements of only comments are dropped.
  function splitSql(text) {
    const out = [];
    const n = text.length;
    let start = 0, i = 0, words = 0, first = '', trigger = false, depth = 0, code = false;
    const finish = (end) => {
      if (code) out.push(text.slice(start, end).trim());
      start = end + 1; words = 0; first = ''; trigger = false; depth = 0; code = false;
    };
    while (i < n) {
      const c = text[i];
      if (c === '-' && text[i + 1] === '-') {
        const e = text.indexOf('\n', i);
        i = e < 0 ? n : e + 1;
      } else if (c === '/' && text[i + 1] === '*') {
        const e = text.indexOf('*/', i + 2);
        i = e < 0 ? n : e + 2;
      } else if (c === "'" || c === '"' || c === '\x60' || c === '[') {
        const e = text.indexOf(c === '[' ? ']' : c, i + 1);
        i = e < 0 ? n : e + 1;
        code = true;
      } else if (/[A-Za-z_]/.test(c)) {
        let j = i + 1;
        while (j < n && /[A-Za-z0-9_$]/.test(text[j])) j++;
        const w = text.slice(i, j).toUpperCase();
        words++;
        if (words === 1) first = w;
        if (first === 'CREATE' && words <= 3 && w === 'TRIGGER') trigger = true;
        else if (trigger && (w === 'BEGIN' || w === 'CASE')) depth++;
        else if (trigger && w === 'END' && depth > 0) depth--;
        i = j;
        code = true;
      } else if (c === ';' && depth === 0) {
        finish(i);
        i++;
      } else {
        if (!/\s/.test(c)) code = true;
        i++;
      }
    }
    finish(n);
    return out;
  }
  window.libsqlctlConsole = { splitSql };

  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const plural = (k, one, many) => k + ' ' + (k === 1 ? one : many);
  const shorten = (s, max) => (s.length > max ? s.slice(0, max) + '\u2026' : s);

  function blobText(b64) {
    let bytes;
    try {
      bytes = atob(b64 || '');
    } catch {
      return 'x\'?\'';
    }
    let hex = '';
    for (let k = 0; k < Math.min(bytes.length, BLOB_BYTES); k++) hex += bytes.charCodeAt(k).toString(16).padStart(2, '0');
    return 'x\'' + hex + (bytes.length > BLOB_BYTES ? '\u2026\' (' + bytes.length + ' bytes)' : '\'');
  }

  function cell(v) {
    const type = v && typeof v === 'object' ? v.type : 'null';
    const td = el('td', type);
    if (type === 'null') td.textContent = 'NULL';
    else if (type === 'blob') td.textContent = blobText(v.base64);
    else td.textContent = String(v.value);
    return td;
  }

  function block(index, sql) {
    const b = el('div', 'result');
    b.dataset.index = String(index);
    if (sql !== null) b.appendChild(el('pre', 'stmt', shorten(sql.replace(/\s+/g, ' '), STMT_CHARS)));
    outEl.appendChild(b);
    return b;
  }

  function showError(b, code, message) {
    b.classList.add('failed');
    const e = el('div', 'error');
    if (code) e.appendChild(el('span', 'code', String(code)));
    e.appendChild(document.createTextNode(String(message)));
    b.appendChild(e);
  }

  function showResult(b, r) {
    b.classList.add('ok');
    const cols = Array.isArray(r.cols) ? r.cols : [];
    const rows = Array.isArray(r.rows) ? r.rows : [];
    if (cols.length === 0) {
      let s = plural(r.affected_row_count || 0, 'row', 'rows') + ' affected';
      if (r.affected_row_count > 0 && r.last_insert_rowid !== null && r.last_insert_rowid !== undefined) s += ', last_insert_rowid ' + r.last_insert_rowid;
      b.appendChild(el('div', 'summary', s));
      return;
    }
    const table = el('table');
    const head = el('tr');
    for (const c of cols) {
      const th = el('th', '', c.name === null || c.name === undefined ? '' : String(c.name));
      if (c.decltype) th.title = String(c.decltype);
      head.appendChild(th);
    }
    table.appendChild(el('thead')).appendChild(head);
    const body = table.appendChild(el('tbody'));
    for (const row of rows.slice(0, MAX_ROWS)) {
      const tr = el('tr');
      for (const v of row) tr.appendChild(cell(v));
      body.appendChild(tr);
    }
    b.appendChild(el('div', 'table-wrap')).appendChild(table);
    b.appendChild(el('div', 'summary', plural(rows.length, 'row', 'rows') + (rows.length > MAX_ROWS ? ' (first ' + MAX_ROWS + ' shown)' : '')));
  }

  function httpError(status, text) {
    let message = text;
    try {
      const j = JSON.parse(text);
      if (j && typeof j === 'object' && j.error !== undefined) message = typeof j.error === 'string' ? j.error : JSON.stringify(j.error);
    } catch {
      // not JSON: the text as it came
    }
    return message.trim() === '' ? 'HTTP ' + status : 'HTTP ' + status + ': ' + message;
  }

  async function run() {
    if (runEl.disabled) return;
    const stmts = splitSql(sqlEl.value);
    outEl.replaceChildren();
    if (stmts.length === 0) {
      statusEl.textContent = 'Nothing to run';
      return;
    }
    const headers = { 'content-type': 'application/json' };
    if (authEl.value.trim() !== '') headers.authorization = authEl.value.trim();
    if (nsEl.value.trim() !== '') headers['x-namespace'] = nsEl.value.trim();
    const steps = stmts.map((sql, k) => {
      const step = { stmt: { sql, want_rows: true } };
      if (k > 0) step.condition = { type: 'ok', step: k - 1 };
      return step;
    });
    const body = JSON.stringify({ baton: null, requests: [{ type: 'batch', batch: { steps } }, { type: 'close' }] });
    runEl.disabled = true;
    outEl.dataset.state = 'running';
    statusEl.textContent = 'Running ' + plural(stmts.length, 'statement', 'statements') + '\u2026';
    const t0 = performance.now();
    let failed = true;
    try {
      const res = await fetch('v2/pipeline', { method: 'POST', headers, body, credentials: 'omit', cache: 'no-store' });
      const text = await res.text();
      if (res.status !== 200) {
        showError(block(0, null), '', httpError(res.status, text));
        return;
      }
      const r0 = JSON.parse(text).results[0];
      if (r0.type === 'error') {
        showError(block(0, null), r0.error.code, r0.error.message);
        return;
      }
      const result = r0.response.result;
      failed = false;
      stmts.forEach((sql, k) => {
        const b = block(k, sql);
        const err = result.step_errors[k];
        const sr = result.step_results[k];
        if (err) {
          failed = true;
          showError(b, err.code, err.message);
        } else if (sr) showResult(b, sr);
        else {
          b.classList.add('skipped');
          b.appendChild(el('div', 'not-run', 'not run'));
        }
      });
    } catch (e) {
      showError(block(0, null), '', 'Request failed: ' + (e && e.message ? e.message : String(e)));
    } finally {
      const ms = Math.round(performance.now() - t0);
      statusEl.textContent = plural(stmts.length, 'statement', 'statements') + (failed ? ', failed' : '') + ' \u00b7 ' + ms + ' ms';
      runEl.disabled = false;
      outEl.dataset.state = 'done';
    }
  }

  const store = (key, value) => {
    try {
      if (value === '') sessionStorage.removeItem(key);
      else sessionStorage.setItem(key, value);
    } catch {
      // storage unavailable: nothing kept
    }
  };
  try {
    authEl.value = sessionStorage.getItem(AUTH_KEY) || '';
    nsEl.value = sessionStorage.getItem(NS_KEY) || '';
  } catch {
    // storage unavailable: start empty
  }
  authEl.addEventListener('input', () => store(AUTH_KEY, authEl.value));
  nsEl.addEventListener('input', () => store(NS_KEY, nsEl.value));
  runEl.addEventListener('click', () => void run());
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      void run();
    }
  });
  outEl.dataset.state = 'ready';
})();
`;

export const CONSOLE_PAGE = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>SQL console</title>
<style>${CONSOLE_STYLE}</style>
</head>
<body>
<main>
<h1>SQL console</h1>
<label for="sql">SQL (statements separated by semicolons)</label>
<textarea id="sql" data-testid="sql" spellcheck="false" autocapitalize="off" autocomplete="off" placeholder="SELECT name, sql FROM sqlite_schema;"></textarea>
<div class="options">
<label for="auth">Authorization header (optional, kept for this tab only)
<input id="auth" data-testid="auth" type="password" autocomplete="off" spellcheck="false" placeholder="Bearer &lt;jwt&gt; or Basic &lt;base64&gt;"></label>
<label for="namespace">Namespace (optional)
<input id="namespace" data-testid="namespace" type="text" autocomplete="off" spellcheck="false" placeholder="default"></label>
</div>
<div class="actions">
<button id="run" data-testid="run" type="button">Run</button>
<span class="hint">Ctrl+Enter / Cmd+Enter</span>
<span id="status" data-testid="status" role="status"></span>
</div>
<section id="output" data-testid="output" aria-live="polite"></section>
</main>
<script>${CONSOLE_SCRIPT}</script>
</body>
</html>
`;
