import { Flags } from '@oclif/core';
import type TableType from 'cli-table3';
import { BaseCommand } from '../../cli/base-command.js';
import { bottomlessFlags, parseDateFlag, parseGenerationFlag, resolveBottomlessTarget, toJson, withStorage } from '../../cli/bottomless-flags.js';
import type { GenerationDetails } from '../../backup/restore/listing.js';

type Fmt = (d: Date) => string;

function counterBytes(n: number): string {
  return `[${[24, 16, 8, 0].map((s) => (n >>> s) & 0xff).join(', ')}]`;
}

/** One generation as label/value rows (bottomless-cli's verbose fields, then ours). */
function verticalTable(Table: typeof TableType, d: GenerationDetails, fmt: Fmt): string {
  const table = new Table({ style: { head: [], border: [] } });
  const row = (label: string, value: string): void => void table.push({ [label]: value });
  row('created at (UTC)', fmt(d.createdAt));
  if (d.error !== undefined) row('error', d.error);
  row('change counter', d.changeCounter === null ? '-' : counterBytes(d.changeCounter));
  row('consistent WAL frame', String(d.consistentWalFrame));
  row('batches', String(d.batches));
  if (d.pageSize !== null) row('page size', String(d.pageSize));
  if (d.walFrameChecksum !== null) row('WAL frame checksum', d.walFrameChecksum);
  if (d.previousGeneration !== null) row('previous generation', d.previousGeneration);
  if (d.snapshot === null) row('main database snapshot', 'none');
  else {
    row('main database snapshot', d.snapshot.key.slice(d.snapshot.key.lastIndexOf('/') + 1));
    row('  object size', String(d.snapshot.objectSize));
    row('  last modified', `${fmt(d.snapshot.lastModified)} UTC`);
    row('  digest', d.snapshot.digest ?? 'absent (made by sqld?)');
  }
  row('durable marker', d.durable === null ? 'none' : `frame ${d.durable.lastFrame}${d.durable.sealed ? ', sealed' : ''}, at ${fmt(d.durable.at)} UTC`);
  return table.toString();
}

export default class Ls extends BaseCommand {
  static override description = 'List the generations of a database in the backup store, newest first.';

  static override examples = ['<%= config.bin %> bottomless ls -e file:///backups', '<%= config.bin %> bottomless ls -n ns-1234:default -v --json'];

  static override flags = {
    ...bottomlessFlags,
    generation: Flags.string({ char: 'g', description: 'Show this generation only.', exclusive: ['limit', 'older-than', 'newer-than'] }),
    limit: Flags.integer({ char: 'l', min: 1, description: 'Show the newest N generations.' }),
    'older-than': Flags.string({ description: 'Only generations created on or before this UTC date (YYYY-MM-DD).' }),
    'newer-than': Flags.string({ description: 'Only generations created on or after this UTC date (YYYY-MM-DD).' }),
    verbose: Flags.boolean({ char: 'v', default: false, description: 'Show each generation in detail.' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Ls);
    const target = await resolveBottomlessTarget(flags);
    const one = await parseGenerationFlag(flags.generation);
    const olderThan = await parseDateFlag(flags['older-than'], '--older-than');
    const newerThan = await parseDateFlag(flags['newer-than'], '--newer-than');
    const [{ describeGeneration, selectGenerations }, { mapLimit }, { formatUtc }, { generationTimeMs }, { BackupNotFoundError }, { default: Table }] = await Promise.all([
      import('../../backup/restore/listing.js'),
      import('../../backup/restore/fetch.js'),
      import('../../backup/restore/utc-format.js'),
      import('../../backup/format/generation-id.js'),
      import('../../backup/restore/errors.js'),
      import('cli-table3'),
    ]);
    await withStorage(target, async (storage) => {
      const filter = { ...(flags.limit === undefined ? {} : { limit: flags.limit }), ...(olderThan ? { olderThan } : {}), ...(newerThan ? { newerThan } : {}) };
      const gens = one !== undefined ? [one] : await selectGenerations(storage, target.db, filter);
      const rows = flags.verbose || one !== undefined ? await mapLimit(gens, 8, (g) => describeGeneration(storage, target.db, g)) : null;
      if (one !== undefined && rows?.[0]?.objects === 0 && rows[0].error === undefined) {
        throw new BackupNotFoundError(`generation ${one} of ${target.db} has no objects in ${storage.description}`, '`bottomless ls` lists the generations there are');
      }
      if (flags.json) {
        this.log(toJson(rows ?? gens.map((g) => ({ generation: g, createdAt: new Date(generationTimeMs(g)) }))));
        return;
      }
      if (gens.length === 0) {
        this.log('No generations found');
        return;
      }
      this.log(`Database ${target.db} (${storage.description}):`);
      if (rows === null) {
        const table = new Table({ head: ['generation', 'created (UTC)'], style: { head: [], border: [] } });
        for (const g of gens) table.push([g, formatUtc(new Date(generationTimeMs(g)))]);
        this.log(table.toString());
        return;
      }
      for (const d of rows) {
        this.log(`Generation ${d.generation}`);
        this.log(verticalTable(Table, d, formatUtc));
      }
    });
  }
}
