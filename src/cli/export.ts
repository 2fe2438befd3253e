/**
 * `bundlemirror export`: an offline kit (one tar file) with what a replica
 * needs, from nothing or from a replica's known state.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { BundlemirrorError } from '../errors.js';
import { formatBytes } from '../format/bytes.js';
import { exportKit } from '../kit/export.js';
import { directorySource, remoteSource, type KitSource } from '../kit/kit-source.js';
import { readPullConfig } from '../replica/config/config.js';
import { notSelected } from '../replica/plan/planner.js';

interface ExportFlags {
  bundles?: string;
  config?: string;
  out: string;
  since?: string;
  quiet?: boolean;
}

export function registerExport(program: Command): void {
  program
    .command('export')
    .description(
      'write an offline kit (a tar with the manifest, indexes and bundles) for a replica that cannot reach the origin',
    )
    .argument('[repo...]', 'only these repositories (manifest paths like /pub/a.git)')
    .option('--bundles <dir>', 'read the published tree from this directory (the output of publish)')
    .option('-c, --config <file>', 'read from the remote of this replica config (its include/exclude apply)')
    .requiredOption('-o, --out <file>', 'the kit file to write (a .sha256 file is written next to it)')
    .option(
      '--since <path>',
      'carry only what this replica lacks: its toplevel directory (exact) or its manifest.js.gz (by fingerprint)',
    )
    .option('-q, --quiet', 'print only the summary')
    .action(async (repos: string[], flags: ExportFlags) => {
      if ((flags.bundles === undefined) === (flags.config === undefined)) {
        throw new BundlemirrorError('E_USAGE', 'export needs exactly one of --bundles DIR and -c CONFIG', {
          hint: 'bundlemirror export --bundles /srv/bundles --out kit.tar',
        });
      }
      const log = flags.quiet ? undefined : (line: string) => process.stderr.write(line + '\n');
      let source: KitSource;
      let select: ((path: string) => boolean) | undefined;
      if (flags.bundles !== undefined) source = await directorySource(resolve(flags.bundles));
      else {
        const config = await readPullConfig(flags.config!);
        source = await remoteSource(config);
        select = (p) => notSelected(p, config.pull) === null;
      }
      const r = await exportKit({
        source,
        out: resolve(flags.out),
        since: flags.since === undefined ? undefined : resolve(flags.since),
        repos,
        select,
        log,
      });
      process.stdout.write(
        `wrote ${r.out}: ${r.repos.length} repositories, ${r.unchanged.length} unchanged, ${r.leftOut.length} left out; ` +
          `${r.bundles} bundles (${formatBytes(r.bundleBytes)})${r.lfsObjects ? `, ${r.lfsObjects} LFS objects (${formatBytes(r.lfsBytes)})` : ''}; ${formatBytes(r.size)}, sha256 ${r.sha256}\n`,
      );
    });
}
