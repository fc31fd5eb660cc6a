import { Flags } from '@oclif/core';
import { BaseCommand } from '../../cli/base-command.js';
import { bottomlessFlags, parseGenerationFlag, parseTimeFlag, resolveBottomlessTarget, toJson, withStorage } from '../../cli/bottomless-flags.js';

export default class Verify extends BaseCommand {
  static override description = 'Restore into a temporary file and check that the backup is complete and intact.';

  static override examples = ['<%= config.bin %> bottomless verify', '<%= config.bin %> bottomless verify -g <generation> --json'];

  static override flags = {
    ...bottomlessFlags,
    generation: Flags.string({ char: 'g', exclusive: ['utc-time'], description: 'Verify this generation (default: the newest).' }),
    'utc-time': Flags.string({ char: 'u', description: 'Verify the state at this time: YYYY-MM-DDTHH:MM:SS[.fff] (UTC) or ISO-8601 with a zone.' }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Verify);
    const target = await resolveBottomlessTarget(flags);
    const generation = await parseGenerationFlag(flags.generation);
    const time = await parseTimeFlag(flags['utc-time']);
    const [{ verifyBackup }, { VerifyFailedError }] = await Promise.all([import('../../backup/restore/verify.js'), import('../../backup/restore/errors.js')]);
    const report = await withStorage(target, (storage) =>
      verifyBackup({
        storage,
        db: target.db,
        ...(generation === undefined ? {} : { generation }),
        ...(time === undefined ? {} : { time }),
        parallel: target.config.parallelMax,
        prefer: target.config.compression,
      }),
    );
    if (flags.json) this.log(toJson(report));
    else {
      const r = report.restore;
      this.log(`Database ${target.db}, generation ${report.generation ?? '(newest)'}`);
      if (r !== null) {
        if (r.snapshot !== null) this.log(`Snapshot size: ${r.snapshot.bytes}`);
        this.log(`Chain: ${r.chain.length} generation(s), ${r.transactions} transaction(s), ${r.frames} frame(s)`);
      }
      for (const c of report.checks) this.log(`  ${c.status.padEnd(8)} ${c.name}: ${c.detail}`);
      this.log(report.ok ? 'Verification: ok' : `Verification failed: ${report.problems[0] ?? 'unknown'}`);
    }
    if (!report.ok) throw new VerifyFailedError(`the backup of ${target.db} is incomplete or damaged: ${report.problems[0] ?? 'unknown'}`);
  }
}
