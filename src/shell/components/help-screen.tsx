import { Box, Text } from 'ink';

const SECTIONS: readonly (readonly [string, readonly (readonly [string, string])[]])[] = [
  ['everywhere', [['?', 'show or hide these keys'], ['q', 'quit (in the SQL console: Esc first)'], ['Ctrl-C', 'quit'], ['Esc', 'back']]],
  ['namespaces', [['↑/↓ j/k', 'select'], ['Enter', 'details'], ['s', 'SQL console'], ['c', 'create a namespace'], ['r', 'refresh now']]],
  [
    'details',
    [
      ['w / W', 'block writes (asks for a reason) / block reads and writes'],
      ['u', 'unblock'],
      ['m', 'set max_db_size (e.g. 10MB)'],
      ['t', 'set txn_timeout_s (empty: default)'],
      ['k', 'checkpoint'],
      ['f', 'fork into a new namespace'],
      ['d', 'delete (asks first)'],
      ['s', 'SQL console'],
    ],
  ],
  ['SQL console', [['Enter', 'run the statement'], ['↑/↓', 'history'], ['PgUp/PgDn', 'scroll the rows'], ['Ctrl-U', 'clear the line']]],
];

/** The keys, by screen. */
export function HelpScreen() {
  return (
    <Box flexDirection="column" flexShrink={0}>
      <Text bold>keys</Text>
      {SECTIONS.map(([title, keys]) => (
        <Box key={title} flexDirection="column" marginTop={1} flexShrink={0}>
          <Text underline>{title}</Text>
          {keys.map(([k, what]) => (
            <Text key={k}>
              <Text color="cyan">{`  ${k.padEnd(10)}`}</Text>
              <Text>{what}</Text>
            </Text>
          ))}
        </Box>
      ))}
      <Text dimColor>{'\n? or Esc closes this'}</Text>
    </Box>
  );
}
