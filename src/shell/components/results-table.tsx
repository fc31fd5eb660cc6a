import { Box, Text } from 'ink';
import type { Cell } from '../api/sql-client.js';
import { fit } from '../format.js';

export interface ResultsTableProps {
  columns: readonly string[];
  rows: readonly (readonly Cell[])[];
  /** First row shown. */
  scroll: number;
  /** Rows available, heading and footer included. */
  height: number;
  width: number;
}

const MAX_CELL = 40;

/** Column widths from the heading and the rows on screen, shrunk to fit `width`. */
function widths(columns: readonly string[], rows: readonly (readonly Cell[])[], width: number): number[] {
  const w = columns.map((c, i) => Math.min(MAX_CELL, Math.max(c.length, ...rows.map((r) => (r[i] ?? 'NULL').length), 4)));
  const sep = 3 * Math.max(0, columns.length - 1);
  let total = w.reduce((a, b) => a + b, 0) + sep;
  while (total > width && Math.max(...w) > 4) {
    const i = w.indexOf(Math.max(...w));
    w[i] = w[i]! - 1;
    total -= 1;
  }
  return w;
}

/** A result set as a text table; `scroll` picks the first row, the footer says which are shown. */
export function ResultsTable({ columns, rows, scroll, height, width }: ResultsTableProps) {
  const pageRows = Math.max(1, height - 3);
  const shown = rows.slice(scroll, scroll + pageRows);
  const w = widths(columns, shown, width);
  const line = (cells: readonly string[]): string => cells.map((c, i) => fit(c, w[i] ?? 4)).join(' │ ');
  return (
    <Box flexDirection="column" flexShrink={0}>
      <Text bold>{line(columns)}</Text>
      <Text dimColor>{w.map((n) => '─'.repeat(n)).join('─┼─')}</Text>
      {shown.map((r, i) => (
        <Text key={scroll + i}>{line(columns.map((_, j) => r[j] ?? 'NULL'))}</Text>
      ))}
      <Text dimColor>
        {rows.length === 0 ? '(no rows)' : `rows ${scroll + 1}–${scroll + shown.length} of ${rows.length}${rows.length > pageRows ? ' · PgUp/PgDn scroll' : ''}`}
      </Text>
    </Box>
  );
}
