import { Text } from 'ink';
import type { ActionStatus } from '../hooks/use-action.js';

/** The outcome of the last action: busy (yellow), done (green), refused (red, the server's text). */
export function StatusLine({ status }: { status: ActionStatus }) {
  if (status === null) return null;
  const color = status.kind === 'busy' ? 'yellow' : status.kind === 'ok' ? 'green' : 'red';
  return (
    <Text color={color} bold={status.kind === 'error'}>
      {status.text}
    </Text>
  );
}
