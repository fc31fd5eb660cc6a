import { Flags } from '@oclif/core';
import { BaseCommand } from '../../cli/base-command.js';
import { bottomlessFlags, resolveBottomlessTarget, toJson, withStorage } from '../../cli/bottomless-flags.js';

export default class Create extends BaseCommand {
  static override description = 'Upload a local SQLite database as a new generation (a snapshot that starts a new chain).';

  static override examples = ['<%= config.bin %> bottomless create -s app.db -n ns-1234:default'];

  static override flags = {
    ...bottomlessFlags,
    'source-db-path': Flags.string({ char: 's', required: true, description: 'The SQLite database file to upload (copied with VACUUM INTO; never modified).' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Create);
    const target = await resolveBottomlessTarget(flags);
    const { createGenerationFromFile } = await import('../../backup/restore/create.js');
    const created = await withStorage(target, (storage) =>
      createGenerationFromFile({ storage, db: target.db, source: flags['source-db-path'], compression: target.config.compression }),
    );
    if (flags.json) this.log(toJson({ db: target.db, ...created }));
    else this.log(`snapshot uploaded for generation: ${created.generation}`);
  }
}
