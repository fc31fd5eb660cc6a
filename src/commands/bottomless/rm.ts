import { Flags } from '@oclif/core';
import { BaseCommand } from '../../cli/base-command.js';
import { UsageError } from '../../cli/usage.js';
import { bottomlessFlags, parseDateFlag, parseGenerationFlag, resolveBottomlessTarget, toJson, withStorage } from '../../cli/bottomless-flags.js';

export default class Rm extends BaseCommand {
  static override description = 'Delete one generation, or every generation created before a date.';

  static override examples = ['<%= config.bin %> bottomless rm -g <generation>', '<%= config.bin %> bottomless rm --older-than 2024-01-01 --dry-run'];

  static override flags = {
    ...bottomlessFlags,
    generation: Flags.string({ char: 'g', description: 'Delete every object of this generation.' }),
    'older-than': Flags.string({ description: 'Delete every generation created before this UTC date (YYYY-MM-DD).' }),
    verbose: Flags.boolean({ char: 'v', default: false, description: 'Name every object as it goes.' }),
    'dry-run': Flags.boolean({ default: false, description: 'Only list what would be deleted.' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Rm);
    const target = await resolveBottomlessTarget(flags);
    const generation = await parseGenerationFlag(flags.generation);
    const before = await parseDateFlag(flags['older-than'], '--older-than');
    if ((generation === undefined) === (before === undefined)) {
      throw new UsageError('give exactly one of -g GENERATION and --older-than DATE', `${this.config.bin} bottomless rm --help`);
    }
    const [{ removeGeneration, removeOlderThan }, { formatUtcDate }] = await Promise.all([import('../../backup/restore/remove.js'), import('../../backup/restore/utc-format.js')]);
    const dryRun = flags['dry-run'];
    const verb = dryRun ? 'Would remove' : 'Removing';
    const onKey = flags.verbose || dryRun ? (key: string): void => (flags.json ? undefined : this.log(`${verb} ${key}`)) : undefined;
    const opts = { dryRun, ...(onKey === undefined ? {} : { onKey }) };
    await withStorage(target, async (storage) => {
      if (generation !== undefined) {
        const keys = await removeGeneration(storage, target.db, generation, opts);
        if (flags.json) this.log(toJson({ dryRun, generations: keys.length > 0 ? [generation] : [], keys }));
        else if (keys.length === 0) this.log('No objects found');
        else this.log(`${dryRun ? 'Would remove' : 'Removed'} ${keys.length} object(s) of generation ${generation}`);
        return;
      }
      const date = formatUtcDate(before!);
      if (flags.verbose && !dryRun && !flags.json) this.log(`Tombstoned ${target.db} at ${date} 00:00:00 UTC`);
      const removed = await removeOlderThan(storage, target.db, before!, opts);
      if (flags.json) this.log(toJson({ dryRun, tombstone: new Date(removed.threshold * 1000), generations: removed.generations, keys: removed.keys }));
      else this.log(`${dryRun ? 'Would remove' : 'Removed'} ${removed.generations.length} generation(s) of ${target.db} up to ${date}`);
    });
  }
}
