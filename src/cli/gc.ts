import { Option, type Command } from 'commander';
import { BundlemirrorError } from '../errors.js';
import { lockPublishedTree } from '../manifest/tree-lock.js';
import { DEFAULT_CHAIN_POLICY } from '../origin/chain.js';
import { collectGarbage } from '../manifest/gc.js';
import { publishTarget, type StoreFlags } from './publish-target.js';
import { addStoreOptions } from './commander-options.js';

export function registerGc(program: Command): void {
  const cmd = program
    .command('gc')
    .description('delete published bundles that no index has referenced for the grace period (publish does this too)')
    .option('--bundles <dir>', 'the published tree (a directory, or the s3://BUCKET/PREFIX publish wrote)', 'bundles')
    .addOption(new Option('-o, --out <dir>', 'the old name of --bundles').hideHelp())
    .option(
      '--grace-days <d>',
      'how long an unreferenced file stays',
      String(DEFAULT_CHAIN_POLICY.graceMs / 86_400_000),
    )
    .option('-n, --dry-run', 'say what would be deleted, delete nothing')
    .action(async (flags: { bundles: string; out?: string; graceDays: string; dryRun?: boolean } & StoreFlags) => {
      const days = Number(flags.graceDays);
      if (!Number.isFinite(days) || days < 0)
        throw new BundlemirrorError(
          'E_USAGE',
          `--grace-days takes a non-negative number, not ${JSON.stringify(flags.graceDays)}`,
        );
      const log = (line: string) => process.stderr.write(line + '\n');
      const target = await publishTarget(flags.out ?? flags.bundles, flags, log);
      const out = target.out;
      // a running publish can hold the tree for minutes: say why nothing happens meanwhile
      const release = await lockPublishedTree(out, { what: `publish or gc of ${out}`, log });
      try {
        const r = await collectGarbage(out, { graceMs: days * 86_400_000, dryRun: flags.dryRun });
        // the store loses what the tree lost, after its grace period like any file
        if (!flags.dryRun) await target.mirror?.();
        for (const f of r.deleted) process.stdout.write(`${flags.dryRun ? 'would delete' : 'deleted'} ${f}\n`);
        process.stdout.write(
          `${r.referenced} referenced, ${r.waiting.length} unreferenced within the grace period, ${r.deleted.length} ${flags.dryRun ? 'to delete' : 'deleted'}\n`,
        );
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT')
          throw new BundlemirrorError('E_USAGE', `${out} has no manifest.js.gz: not a published tree`, {
            hint: 'pass --bundles the directory publish writes',
          });
        throw err;
      } finally {
        await release();
      }
    });
  addStoreOptions(cmd);
}
