import { Box, Text } from 'ink';
import type { AdminApiError, NamespaceConfigDoc, NamespaceStatsDoc, NamespaceSummary } from '../api/admin-client.js';
import { fit, formatBytes, formatCount } from '../format.js';

export interface NamespaceDetailProps {
  name: string;
  summary: NamespaceSummary | null;
  config: NamespaceConfigDoc | null;
  stats: NamespaceStatsDoc | null;
  error: AdminApiError | null;
  width: number;
  /** Rows for the top statements. */
  height: number;
}

function Row({ label, value, color }: { label: string; value: string; color?: string | undefined }) {
  return (
    <Text>
      <Text dimColor>{label.padEnd(18)}</Text>
      <Text color={color}>{value}</Text>
    </Text>
  );
}

function blocked(c: NamespaceConfigDoc): string {
  const what = c.block_reads ? 'reads and writes blocked' : c.block_writes ? 'writes blocked' : 'no';
  return c.block_reason && (c.block_reads || c.block_writes) ? `${what} — ${c.block_reason}` : what;
}

/** One namespace: its config, its counters and its busiest statements. */
export function NamespaceDetail({ name, summary, config, stats, error, width, height }: NamespaceDetailProps) {
  const top = stats?.top_queries ?? [];
  const topRows = Math.max(0, height - 14);
  return (
    <Box flexDirection="column" flexShrink={0}>
      <Text bold>{`namespace ${name}`}</Text>
      {error ? <Text color="red">{error.message}</Text> : null}
      {config === null ? (
        <Text dimColor>loading the config…</Text>
      ) : (
        <Box flexDirection="column" marginTop={1} flexShrink={0}>
          <Row label="blocked" value={blocked(config)} color={config.block_reads || config.block_writes ? 'yellow' : undefined} />
          <Row label="max_db_size" value={String(config.max_db_size ?? '–')} />
          <Row label="txn_timeout_s" value={config.txn_timeout_s === null ? 'default (5)' : String(config.txn_timeout_s)} />
          <Row label="durability_mode" value={config.durability_mode ?? '–'} />
          <Row label="jwt_key" value={config.jwt_key ? 'set (namespace JWT auth)' : 'none'} />
          <Row label="config version" value={config.config_version === undefined ? '–' : String(config.config_version)} />
        </Box>
      )}
      {stats === null ? null : (
        <Box flexDirection="column" marginTop={1} flexShrink={0}>
          <Row label="storage" value={formatBytes(stats.storage_bytes_used)} />
          <Row label="rows read/written" value={`${formatCount(stats.rows_read_count)} / ${formatCount(stats.rows_written_count)}`} />
          <Row label="statements" value={`${formatCount(stats.query_count)} (${stats.elapsed_ms.toFixed(1)} ms)`} />
          <Row label="replication index" value={formatCount(stats.replication_index)} />
          <Row label="backup lag" value={summary?.backupLagFrames == null ? 'not known' : `${formatCount(summary.backupLagFrames)} frames`} />
        </Box>
      )}
      {top.length > 0 && topRows > 0 ? (
        <Box flexDirection="column" marginTop={1} flexShrink={0}>
          <Text bold>top statements (rows read / written)</Text>
          {top.slice(0, topRows).map((q, i) => (
            <Text key={i}>{`${fit(`${q.rows_read} / ${q.rows_written}`, 14)}${fit(q.query, Math.max(10, width - 16), false)}`}</Text>
          ))}
        </Box>
      ) : null}
    </Box>
  );
}
