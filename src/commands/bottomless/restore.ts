import { Flags } from '@oclif/core';
import { BaseCommand } from '../../cli/base-command.js';
import { bottomlessFlags } from '../../cli/bottomless-flags.js';
import { runRestore } from '../../cli/restore-run.js';

export default class Restore extends BaseCommand {
  static override description = 'Restore a database from the backup store into the data directory (or a file).';

  static override examples = [
    '<%= config.bin %> bottomless restore -d data.sqld --force',
    '<%= config.bin %> bottomless restore --utc-time 2024-05-01T12:00:00 -o restored.db',
  ];

  static override flags = {
    ...bottomlessFlags,
    generation: Flags.string({ char: 'g', exclusive: ['utc-time'], description: 'Restore this generation (default: the newest).' }),
    'utc-time': Flags.string({ char: 'u', description: 'Restore the state at this time: YYYY-MM-DDTHH:MM:SS[.fff] (UTC) or ISO-8601 with a zone.' }),
    output: Flags.string({ char: 'o', description: 'Write the database to this file instead of <database>/dbs/<namespace>/data.' }),
    force: Flags.boolean({ default: false, description: 'Replace an existing database.' }),
    'allow-gaps': Flags.boolean({ default: false, description: 'On missing frames, restore the last consistent state before the first gap instead of failing.' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Restore);
    await runRestore(flags, { log: (line) => this.log(line), logToStderr: (line) => this.logToStderr(line) });
  }
}
