import { Text } from 'ink';

export type Prompt = { kind: 'input'; label: string; value: string } | { kind: 'confirm'; question: string };

/** A one-line question: text to type (Enter sends, Esc cancels) or a yes/no confirmation. */
export function PromptLine({ prompt }: { prompt: Prompt }) {
  if (prompt.kind === 'confirm') {
    return (
      <Text color="magenta" bold>
        {`${prompt.question} [y/N]`}
      </Text>
    );
  }
  return (
    <Text>
      <Text color="magenta" bold>{`${prompt.label}: `}</Text>
      <Text>{prompt.value}</Text>
      <Text inverse> </Text>
      <Text dimColor>{'  (Enter to send, Esc to cancel)'}</Text>
    </Text>
  );
}
