import { toConfiguredId, ux, type Hook, type Interfaces } from '@oclif/core';
import { helpHint, USAGE_EXIT_CODE, usageLines } from '../usage.js';

/**
 * What is wrong with a command line whose words name no command (oclif joins the leading words into
 * one id, `serve:extra` for `serve extra`): words after a command's name, an unknown command (the
 * words up to the first that is no topic), or a flag before any command.
 */
export function describeUnknownId(config: Interfaces.Config, id: string): { message: string; hint: string } {
  const words = id.split(':');
  for (let n = words.length - 1; n > 0; n -= 1) {
    const commandId = words.slice(0, n).join(':');
    if (config.findCommand(commandId)) return { message: `unexpected argument: ${words.slice(n).join(' ')}`, hint: helpHint(config, commandId) };
  }
  if (id.startsWith('-')) return { message: `unknown flag: ${id}`, hint: helpHint(config) };
  let known = 0;
  while (known < words.length - 1 && config.findTopic(words.slice(0, known + 1).join(':'))) known += 1;
  const topic = known > 0 ? words.slice(0, known).join(':') : undefined;
  return { message: `unknown command: ${toConfiguredId(words.slice(0, known + 1).join(':'), config)}`, hint: helpHint(config, topic) };
}

/** oclif's `command_not_found` hook: one line on stderr instead of oclif's `command … not found`, exit 2. */
const commandNotFound: Hook.CommandNotFound = function (opts) {
  const { message, hint } = describeUnknownId(opts.config, opts.id);
  ux.stderr(usageLines(message, hint));
  this.exit(USAGE_EXIT_CODE);
  return Promise.resolve();
};

export default commandNotFound;
