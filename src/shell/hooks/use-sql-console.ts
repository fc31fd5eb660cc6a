/**
 * The SQL console's state: the line being typed, the history (↑/↓ walk it, newest last), the last
 * result and how far its rows are scrolled. Read back synchronously (useSyncState), so text and
 * Enter arriving in one burst run the whole line.
 */
import { useCallback, useRef } from 'react';
import { SqlClientError, type SqlClient, type SqlResult } from '../api/sql-client.js';
import { useSyncState } from './use-sync-state.js';

const HISTORY_LIMIT = 200;

export interface SqlEntry {
  sql: string;
  namespace: string;
  result: SqlResult;
}

export interface SqlConsoleState {
  input: string;
  /** The line as typed so far, including keys not rendered yet. */
  currentInput(): string;
  running: boolean;
  last: SqlEntry | null;
  /** First result row shown. */
  scroll: number;
  history: readonly string[];
  type(text: string): void;
  backspace(): void;
  clearLine(): void;
  historyUp(): void;
  historyDown(): void;
  scrollBy(delta: number, pageRows: number): void;
  submit(namespace: string): void;
}

export function useSqlConsole(client: SqlClient | null): SqlConsoleState {
  const [input, setInput, getInput] = useSyncState('');
  const [running, setRunning, isRunning] = useSyncState(false);
  const [last, setLast, getLast] = useSyncState<SqlEntry | null>(null);
  const [scroll, setScroll] = useSyncState(0);
  const [history, setHistory, getHistory] = useSyncState<readonly string[]>([]);
  /** Position while walking the history; history.length = the line being typed. */
  const cursor = useRef(0);
  const draft = useRef('');

  const type = useCallback((text: string) => setInput((s) => s + text), [setInput]);
  const backspace = useCallback(() => setInput((s) => s.slice(0, -1)), [setInput]);
  const clearLine = useCallback(() => setInput(''), [setInput]);

  const historyUp = useCallback(() => {
    const h = getHistory();
    if (cursor.current >= h.length) {
      cursor.current = h.length;
      draft.current = getInput();
    }
    if (cursor.current === 0) return;
    cursor.current -= 1;
    setInput(h[cursor.current] ?? '');
  }, [getHistory, getInput, setInput]);

  const historyDown = useCallback(() => {
    const h = getHistory();
    if (cursor.current >= h.length) return;
    cursor.current += 1;
    setInput(cursor.current === h.length ? draft.current : (h[cursor.current] ?? ''));
  }, [getHistory, setInput]);

  const scrollBy = useCallback(
    (delta: number, pageRows: number) => {
      const l = getLast();
      const total = l?.result.kind === 'rows' ? l.result.rows.length : 0;
      setScroll((s) => Math.max(0, Math.min(Math.max(0, total - pageRows), s + delta)));
    },
    [getLast, setScroll],
  );

  const submit = useCallback(
    (namespace: string) => {
      const sql = getInput().trim();
      if (sql === '' || isRunning() || client === null) return;
      const h = getHistory();
      const next = h[h.length - 1] === sql ? h : [...h, sql].slice(-HISTORY_LIMIT);
      setHistory(next);
      cursor.current = next.length;
      draft.current = '';
      setInput('');
      setRunning(true);
      client
        .execute(namespace, sql)
        .then(
          (result) => setLast({ sql, namespace, result }),
          (err: unknown) => {
            const message = err instanceof Error ? err.message : String(err);
            setLast({ sql, namespace, result: { kind: 'error', message, code: err instanceof SqlClientError ? err.code : null } });
          },
        )
        .finally(() => {
          setScroll(0);
          setRunning(false);
        });
    },
    [client, getHistory, getInput, isRunning, setHistory, setInput, setLast, setRunning, setScroll],
  );

  return { input, currentInput: getInput, running, last, scroll, history, type, backspace, clearLine, historyUp, historyDown, scrollBy, submit };
}
