import { stripVTControlCharacters } from 'node:util';
import { toConfiguredId, type Interfaces } from '@oclif/core';
import { ConfigError } from '../errors.js';

type Config = Interfaces.Config;

/**
 * Exit code of a command line that cannot be parsed: a ConfigError's (exitCodeFor), and clap's,
 * hence sqld's, for usage errors.
 */
export const USAGE_EXIT_CODE = 2;

/** A command line that makes no sense (unknown flag or command, bad value): reported as usageLines says. */
export class UsageError extends ConfigError {
  override readonly hint: string;

  constructor(message: string, hint: string, options?: { cause?: unknown }) {
    super('CONFIG_COMMAND_LINE', message, { hint, ...(options?.cause === undefined ? {} : { cause: options.cause }) });
    this.hint = hint;
  }
}

/**
 * `Error: <what is wrong>` on one line, then `Try: <hint>`: the same two lines as every other
 * start-up error (base-command.ts), whatever the parser's message looked like.
 */
export function usageLines(message: string, hint: string): string {
  return `Error: ${oneLine(message).replace(/[.\s]+$/, '')}\nTry: ${hint}`;
}

/** How to get help: `<bin> <command> --help`, or `<bin> --help` without a command. */
export function helpHint(config: Config, commandId?: string): string {
  return commandId ? `${config.bin} ${toConfiguredId(commandId, config)} --help` : `${config.bin} --help`;
}

/** Colours and line breaks out, runs of white space as one space. */
export function oneLine(text: string): string {
  return stripVTControlCharacters(text).replace(/\s+/g, ' ').trim();
}

/**
 * What oclif's parser said, made to read as one short clause: without its "See more help" line
 * (usageLines gives the hint) and with its multi-line forms folded.
 */
export function describeParseFailure(message: string): string {
  return oneLine(message.replaceAll('See more help with --help', ''))
    .replace(/^The following errors? occurred: /, '')
    .replace(/^Nonexistent flag(s?): /, 'unknown flag$1: ')
    .replace(/^Parsing (--\S+) /, '$1: ')
    .replace(/^Unexpected argument(s?): /, 'unexpected argument$1: ');
}
