import { Box, Text } from 'ink';
import type { ConnectionState } from '../hooks/use-namespaces.js';
import { clock } from '../format.js';

export interface HeaderProps {
  adminUrl: string;
  screen: string;
  connection: ConnectionState;
  refreshSeconds: number;
}

/** Title line and the admin API's connection state (errors in red, with what to do). */
export function Header({ adminUrl, screen, connection, refreshSeconds }: HeaderProps) {
  return (
    <Box flexDirection="column">
      <Text>
        <Text bold>libsqlctl admin-shell</Text>
        <Text dimColor>{`  ${adminUrl}  ·  ${screen}`}</Text>
      </Text>
      <ConnectionLine connection={connection} refreshSeconds={refreshSeconds} />
    </Box>
  );
}

function ConnectionLine({ connection, refreshSeconds }: { connection: ConnectionState; refreshSeconds: number }) {
  if (connection.state === 'connecting') return <Text color="yellow">connecting to the admin API…</Text>;
  if (connection.state === 'ok') return <Text color="green">{`connected · updated ${clock(connection.at)} · every ${refreshSeconds} s`}</Text>;
  const { error, failures } = connection;
  const what = error.code === 'ADMIN_UNAUTHORIZED' ? 'wrong or missing admin key (401): start with --auth KEY' : error.message;
  return (
    <Text color="red" bold>
      {`${what} · retrying every ${refreshSeconds} s (${failures} failed)`}
    </Text>
  );
}
