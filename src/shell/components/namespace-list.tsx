import { Box, Text } from 'ink';
import type { NamespaceSummary } from '../api/admin-client.js';
import { blockedText, fit, formatBytes, formatCount } from '../format.js';

export interface NamespaceListProps {
  namespaces: readonly NamespaceSummary[] | null;
  selected: number;
  /** Rows available for the table, its heading included. */
  height: number;
  width: number;
}

const COLS = [
  { title: 'size', width: 11 },
  { title: 'rows read', width: 11 },
  { title: 'rows written', width: 13 },
  { title: 'repl index', width: 11 },
  { title: 'backup lag', width: 11 },
  { title: 'blocked', width: 13 },
] as const;

function cells(ns: NamespaceSummary): string[] {
  return [
    formatBytes(ns.storageBytesUsed),
    formatCount(ns.rowsReadCount),
    formatCount(ns.rowsWrittenCount),
    formatCount(ns.replicationIndex),
    ns.backupLagFrames === null ? '–' : `${formatCount(ns.backupLagFrames)} fr`,
    blockedText(ns),
  ];
}

/** The namespaces as a table, the selected one highlighted; scrolls to keep it visible. */
export function NamespaceList({ namespaces, selected, height, width }: NamespaceListProps) {
  if (namespaces === null) return <Text dimColor>waiting for the first answer of GET /v1/namespaces…</Text>;
  if (namespaces.length === 0) return <Text dimColor>no namespaces (press c to create one)</Text>;
  const fixed = COLS.reduce((n, c) => n + c.width, 0);
  const nameWidth = Math.max(8, width - fixed - 2);
  // The heading, and a footer line when the rows do not all fit.
  const visible = Math.max(1, namespaces.length > height - 1 ? height - 2 : height - 1);
  const first = Math.min(Math.max(0, selected - visible + 1), Math.max(0, namespaces.length - visible));
  const line = (name: string, values: readonly string[]): string => fit(name, nameWidth) + values.map((v, i) => (i === COLS.length - 1 ? ' ' + fit(v, COLS[i]!.width - 1) : fit(v, COLS[i]!.width - 1, false).padStart(COLS[i]!.width))).join('');
  return (
    <Box flexDirection="column" flexShrink={0}>
      <Text bold>{`  ${line('namespace', COLS.map((c) => c.title))}`}</Text>
      {namespaces.slice(first, first + visible).map((ns, i) => {
        const isSelected = first + i === selected;
        return (
          <Text key={ns.name} inverse={isSelected} color={ns.blockReads || ns.blockWrites ? 'yellow' : undefined}>
            {`${isSelected ? '›' : ' '} ${line(ns.name, cells(ns))}`}
          </Text>
        );
      })}
      {namespaces.length > visible ? <Text dimColor>{`  ${first + 1}–${Math.min(namespaces.length, first + visible)} of ${namespaces.length}`}</Text> : null}
    </Box>
  );
}
