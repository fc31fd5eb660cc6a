import { Args, loadHelpClass, type Interfaces } from '@oclif/core';
import { BaseCommand } from '../cli/base-command.js';
import { UsageError } from '../cli/usage.js';

/** `libsqlctl help [COMMAND]`, as `sqld help`: the help oclif prints for `--help`, on stdout. */
export default class Help extends BaseCommand {
  static override description = 'Print the usage of <%= config.bin %> or of one of its commands.';

  static override examples = ['<%= config.bin %> help', '<%= config.bin %> help serve'];

  static override args = {
    command: Args.string({ description: 'Command to show the usage of.', required: false }),
  };

  /** A command of several words (`help bottomless restore`) is several arguments. */
  static override strict = false;

  async run(): Promise<void> {
    const { argv } = await this.parse(Help);
    const words = (argv as string[]).filter((a) => !a.startsWith('-'));
    const id = words.join(':');
    if (id !== '' && !this.config.findCommand(id) && !this.config.findTopic(id)) {
      throw new UsageError(`unknown command: ${words.join(' ')}`, `${this.config.bin} help`);
    }
    // Where oclif looks for help options itself: package.json's `oclif` section, or its top level.
    const options = this.config.pjson.oclif.helpOptions ?? (this.config.pjson.helpOptions as Interfaces.HelpOptions | undefined);
    const HelpClass = await loadHelpClass(this.config);
    await new HelpClass(this.config, options).showHelp(words);
  }
}
