import { Box, Text } from 'ink';
import type { SqlEntry } from '../hooks/use-sql-console.js';
import { ResultsTable } from './results-table.js';

export interface SqlConsoleProps {
  namespace: string;
  /** The user port, or null when `--http-url` was not given. */
  httpUrl: string | null;
  input: string;
  running: boolean;
  last: SqlEntry | null;
  scroll: number;
  height: number;
  width: number;
}

/** The SQL prompt on one namespace and the last statement's result. */
export function SqlConsole({ namespace, httpUrl, input, running, last, scroll, height, width }: SqlConsoleProps) {
  if (httpUrl === null) {
    return (
      <Box flexDirection="column">
        <Text bold>{`SQL console · ${namespace}`}</Text>
        <Text color="yellow">The SQL console needs the server&apos;s user port: start admin-shell with --http-url http://HOST:PORT</Text>
        <Text dimColor>(statements go to POST /v2/pipeline with the x-namespace header; Esc goes back)</Text>
      </Box>
    );
  }
  return (
    <Box flexDirection="column" flexShrink={0}>
      <Text>
        <Text bold>{`SQL console · ${namespace}`}</Text>
        <Text dimColor>{`  via ${httpUrl}/v2/pipeline`}</Text>
      </Text>
      <Text>
        <Text color="cyan" bold>{`${namespace}> `}</Text>
        <Text>{input}</Text>
        <Text inverse> </Text>
        {running ? <Text color="yellow">{'  running…'}</Text> : null}
      </Text>
      {last === null ? <Text dimColor>Type a statement and press Enter; ↑/↓ walk the history.</Text> : <Result entry={last} scroll={scroll} height={height - 2} width={width} />}
    </Box>
  );
}

function Result({ entry, scroll, height, width }: { entry: SqlEntry; scroll: number; height: number; width: number }) {
  const r = entry.result;
  return (
    <Box flexDirection="column" flexShrink={0}>
      <Text dimColor>{`> ${entry.sql}`}</Text>
      {r.kind === 'error' ? (
        <Text color="red" bold>{`error${r.code ? ` ${r.code}` : ''}: ${r.message}`}</Text>
      ) : r.columns.length === 0 ? (
        <Text color="green">{`ok · ${r.affectedRowCount} row${r.affectedRowCount === 1 ? '' : 's'} changed${r.lastInsertRowid ? ` · last rowid ${r.lastInsertRowid}` : ''}`}</Text>
      ) : (
        <ResultsTable columns={r.columns} rows={r.rows} scroll={scroll} height={height - 1} width={width} />
      )}
    </Box>
  );
}
