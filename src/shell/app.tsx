/**
 * The admin shell's top component: it owns the screen state and the keyboard, and wires the hooks
 * (which call the API) to the components (which only render).
 */
import { Box, Text, useApp, useInput, useStdout, type Key } from 'ink';
import { useCallback, useRef } from 'react';
import type { AdminClient } from './api/admin-client.js';
import type { SqlClient } from './api/sql-client.js';
import { Header } from './components/header.js';
import { HelpScreen } from './components/help-screen.js';
import { NamespaceDetail } from './components/namespace-detail.js';
import { NamespaceList } from './components/namespace-list.js';
import { PromptLine, type Prompt } from './components/prompt-line.js';
import { SqlConsole } from './components/sql-console.js';
import { StatusLine } from './components/status-line.js';
import { useAction } from './hooks/use-action.js';
import { useNamespaceDetail } from './hooks/use-namespace-detail.js';
import { useNamespaces } from './hooks/use-namespaces.js';
import { useSqlConsole } from './hooks/use-sql-console.js';
import { useSyncState } from './hooks/use-sync-state.js';
import { useTerminalSize } from './hooks/use-terminal-size.js';

export interface AppProps {
  admin: AdminClient;
  /** The SQL console's client, or null without `--http-url`. */
  sql: SqlClient | null;
  /** Open this namespace's SQL console at start (`--namespace`). */
  initialNamespace?: string | undefined;
  /** How often the list and the detail view ask the server (default 2000 ms). */
  refreshMs?: number | undefined;
}

type Screen = 'list' | 'detail' | 'sql';

/** An open question and what to do with the answer. */
type Asking = { prompt: Prompt & { kind: 'input' }; onSubmit(value: string): void } | { prompt: Prompt & { kind: 'confirm' }; onYes(): void };

const SCREEN_TITLES: Record<Screen, string> = { list: 'namespaces', detail: 'details', sql: 'SQL console' };
const HINTS: Record<Screen, string> = {
  list: '↑/↓ select · Enter details · s SQL · c create · r refresh · ? keys · q quit',
  detail: 'w/W block · u unblock · m max size · t txn timeout · k checkpoint · f fork · d delete · s SQL · Esc · ? keys',
  sql: 'Enter run · ↑/↓ history · PgUp/PgDn scroll · Esc back',
};

/** A byte size as typed: plain digits are bytes, anything else goes to the server as text (`10MB`). */
const byteSize = (v: string): string | number => (/^\d+$/.test(v.trim()) ? Number(v.trim()) : v.trim());

export function App({ admin, sql, initialNamespace, refreshMs = 2000 }: AppProps) {
  const { exit } = useApp();
  const { stdout } = useStdout();
  const size = useTerminalSize(stdout);
  const list = useNamespaces(admin, refreshMs);
  // Read back with get…() in key handlers: several keys may arrive before the next render.
  const [screen, setScreen, getScreen] = useSyncState<Screen>(initialNamespace === undefined ? 'list' : 'sql');
  const [, setBack, getBack] = useSyncState<Screen>('list');
  const [selectedName, setSelectedName, getSelectedName] = useSyncState<string | null>(initialNamespace ?? null);
  const [asking, setAsking, getAsking] = useSyncState<Asking | null>(null);
  const [help, setHelp, getHelp] = useSyncState(false);
  const action = useAction();
  const consoleState = useSqlConsole(sql);

  const namespaces = list.namespaces;
  /** The selected row: the selected name's, else the first. */
  const indexOf = (name: string | null): number => Math.max(0, namespaces?.findIndex((n) => n.name === name) ?? 0);
  const nameOf = (name: string | null): string | null => name ?? namespaces?.[0]?.name ?? null;
  const selectedIndex = indexOf(selectedName);
  const current = nameOf(selectedName);
  const summary = namespaces?.find((n) => n.name === current) ?? null;
  const detail = useNamespaceDetail(admin, screen === 'detail' ? current : null, refreshMs);

  const refreshAll = useCallback(() => {
    list.refresh();
    detail.refresh();
  }, [list, detail]);

  const ask = (label: string, onSubmit: (value: string) => void): void => setAsking({ prompt: { kind: 'input', label, value: '' }, onSubmit });
  const confirm = (question: string, onYes: () => void): void => setAsking({ prompt: { kind: 'confirm', question }, onYes });
  const go = (to: Screen): void => {
    if (to === 'sql' && getScreen() !== 'sql') setBack(getScreen());
    setScreen(to);
  };

  const onPromptKey = (input: string, key: Key, a: Asking): void => {
    if (a.prompt.kind === 'confirm') {
      setAsking(null);
      if (input === 'y' || input === 'Y') (a as Extract<Asking, { onYes(): void }>).onYes();
      return;
    }
    const p = a.prompt;
    if (key.escape) setAsking(null);
    else if (key.return) {
      setAsking(null);
      (a as Extract<Asking, { onSubmit(v: string): void }>).onSubmit(p.value);
    } else if (key.backspace || key.delete) setAsking({ ...a, prompt: { ...p, value: p.value.slice(0, -1) } } as Asking);
    else if (key.ctrl && input === 'u') setAsking({ ...a, prompt: { ...p, value: '' } } as Asking);
    else if (input !== '' && !key.ctrl && !key.meta) setAsking({ ...a, prompt: { ...p, value: p.value + input } } as Asking);
  };

  const onListKey = (input: string, key: Key): void => {
    const names = namespaces ?? [];
    // A selected name that is gone (deleted elsewhere) gives way to the row shown as selected.
    const wanted = getSelectedName();
    const sel = names.some((n) => n.name === wanted) ? wanted : (names[0]?.name ?? null);
    const move = (d: number): void => {
      const next = names[Math.max(0, Math.min(names.length - 1, indexOf(sel) + d))];
      if (next) setSelectedName(next.name);
    };
    if (key.upArrow || input === 'k') move(-1);
    else if (key.downArrow || input === 'j') move(1);
    else if (key.pageUp) move(-10);
    else if (key.pageDown) move(10);
    else if (key.return && sel !== null) {
      setSelectedName(sel);
      go('detail');
    } else if (input === 's' && sel !== null) {
      setSelectedName(sel);
      go('sql');
    }
    else if (input === 'r') list.refresh();
    else if (input === 'c') {
      ask('name of the new namespace', (name) => {
        if (name.trim() === '') return;
        action.run(`creating ${name}`, () => admin.create(name), `created ${name}`, () => {
          setSelectedName(name);
          list.refresh();
        });
      });
    }
  };

  const onDetailKey = (input: string, key: Key, ns: string): void => {
    const change = (label: string, fn: () => Promise<void>, done: string): void => action.run(label, fn, done, refreshAll);
    if (key.escape || key.leftArrow) setScreen('list');
    else if (input === 's') go('sql');
    else if (input === 'w' || input === 'W') {
      const reads = input === 'W';
      ask(`reason for blocking ${reads ? 'reads and writes' : 'writes'} (may be empty)`, (reason) =>
        change(`blocking ${ns}`, () => admin.updateConfig(ns, { block_writes: true, block_reads: reads, block_reason: reason.trim() === '' ? null : reason.trim() }), `${ns}: ${reads ? 'reads and writes' : 'writes'} blocked`),
      );
    } else if (input === 'u') change(`unblocking ${ns}`, () => admin.updateConfig(ns, { block_reads: false, block_writes: false, block_reason: null }), `${ns}: unblocked`);
    else if (input === 'm') {
      ask('max_db_size (e.g. 10MB, 1GiB, or bytes)', (v) => {
        if (v.trim() !== '') change(`setting max_db_size of ${ns}`, () => admin.updateConfig(ns, { max_db_size: byteSize(v) }), `${ns}: max_db_size set to ${v.trim()}`);
      });
    } else if (input === 't') {
      ask('txn_timeout_s (seconds; empty for the default)', (v) => {
        const t = v.trim() === '' ? null : Number(v.trim());
        if (t !== null && (!Number.isInteger(t) || t < 0)) action.run('txn_timeout_s', () => Promise.reject(new Error(`not a whole number of seconds: ${v}`)), '');
        else change(`setting txn_timeout_s of ${ns}`, () => admin.updateConfig(ns, { txn_timeout_s: t }), `${ns}: txn_timeout_s ${t === null ? 'back to the default' : `set to ${t}`}`);
      });
    } else if (input === 'k') change(`checkpointing ${ns}`, () => admin.checkpoint(ns), `${ns}: checkpointed`);
    else if (input === 'f') {
      ask(`fork ${ns} into (new namespace name)`, (to) => {
        if (to.trim() !== '') action.run(`forking ${ns} into ${to}`, () => admin.fork(ns, to.trim()), `forked ${ns} into ${to}`, list.refresh);
      });
    } else if (input === 'd') {
      confirm(`delete namespace ${ns} and its data?`, () =>
        action.run(`deleting ${ns}`, () => admin.delete(ns), `deleted ${ns}`, () => {
          setSelectedName(null);
          setScreen('list');
          list.refresh();
        }),
      );
    }
  };

  const onSqlKey = (input: string, key: Key, ns: string, pageRows: number): void => {
    if (key.escape) setScreen(getBack());
    else if (key.return) consoleState.submit(ns);
    else if (key.upArrow) consoleState.historyUp();
    else if (key.downArrow) consoleState.historyDown();
    else if (key.pageUp) consoleState.scrollBy(-pageRows, pageRows);
    else if (key.pageDown) consoleState.scrollBy(pageRows, pageRows);
    else if (key.backspace || key.delete) consoleState.backspace();
    else if (key.ctrl && input === 'u') consoleState.clearLine();
    else if (input !== '' && !key.ctrl && !key.meta) consoleState.type(input.replace(/[\r\n]+/g, ' '));
  };

  // Rows around the body: header (2), a blank line, status, prompt or hints, and one spare (Ink redraws the whole screen when its output fills the terminal).
  const bodyHeight = Math.max(3, size.rows - 6);
  // Result rows on one page of the console (its title, prompt, statement, table heading and footer take 6).
  const pageRows = Math.max(1, bodyHeight - 6);

  // Ink re-registers a useInput handler only in a passive effect, after the frame is drawn: a key
  // typed in between would reach the previous render's handler. So useInput gets one stable
  // function that calls the handler of the latest render.
  const onKey = (input: string, key: Key): void => {
    const a = getAsking();
    if (a) return onPromptKey(input, key, a);
    if (getHelp()) {
      if (input === 'q') exit();
      else if (input === '?' || key.escape) setHelp(false);
      return;
    }
    const on = getScreen();
    const typing = on === 'sql' && sql !== null;
    if (input === '?' && (!typing || consoleState.currentInput() === '')) return setHelp(true);
    if (input === 'q' && !typing) return exit();
    const ns = nameOf(getSelectedName());
    if (on === 'list') onListKey(input, key);
    else if (ns === null) setScreen('list');
    else if (on === 'detail') onDetailKey(input, key, ns);
    else if (sql === null) {
      if (key.escape) setScreen(getBack());
    } else onSqlKey(input, key, ns, pageRows);
  };
  const latestOnKey = useRef(onKey);
  latestOnKey.current = onKey;
  useInput(useCallback((input: string, key: Key) => latestOnKey.current(input, key), []));

  const width = Math.max(20, size.columns - 1);
  let body;
  if (help) body = <HelpScreen />;
  else if (screen === 'list') body = <NamespaceList namespaces={namespaces} selected={selectedIndex} height={bodyHeight} width={width} />;
  else if (current === null) body = <Text dimColor>no namespace selected</Text>;
  else if (screen === 'detail') body = <NamespaceDetail name={current} summary={summary} config={detail.config} stats={detail.stats} error={detail.error} width={width} height={bodyHeight} />;
  else body = <SqlConsole namespace={current} httpUrl={sql?.baseUrl ?? null} input={consoleState.input} running={consoleState.running} last={consoleState.last} scroll={consoleState.scroll} height={bodyHeight} width={width} />;

  return (
    <Box flexDirection="column" width={size.columns}>
      <Header adminUrl={admin.baseUrl} screen={SCREEN_TITLES[screen]} connection={list.connection} refreshSeconds={refreshMs / 1000} />
      <Box flexDirection="column" marginTop={1} height={bodyHeight} overflow="hidden">
        {body}
      </Box>
      <StatusLine status={action.status} />
      {asking ? <PromptLine prompt={asking.prompt} /> : <Text dimColor wrap="truncate-end">{HINTS[screen]}</Text>}
    </Box>
  );
}
