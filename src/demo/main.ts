/**
 * The README's first command: a whole origin-to-replica round trip on this
 * machine, with nothing to set up. It publishes sample repositories into
 * ./bundles, serves them on 127.0.0.1, clones one with stock git through
 * the bundle-uri list, then mirrors everything through a link that breaks
 * every 256 KiB, and checks every fingerprint. The on-demand service then
 * bundles a plain smart-HTTP upstream for `clone --via`. Then a Git LFS file travels
 * from a work tree to the origin, to the replica and into a clone.
 */
import { readdir, rm, mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { git } from '../git/exec.js';
import { fingerprint } from '../git/repo.js';
import { publish } from '../origin/publish.js';
import { startServer } from '../server/server.js';
import { loadPullConfig } from '../replica/config/config.js';
import { pull } from '../replica/pull.js';
import { createPullLog } from '../replica/log.js';
import { formatBytes } from '../format/bytes.js';
import { startFaultProxy } from '../faults/fault-proxy.js';
import { createSampleRepo, demoCollection, seededBytes } from './samples.js';
import { demoLfs, gitLfsAvailable, writeDemoWriters } from './lfs.js';
import { demoOnDemand } from './on-demand.js';

const CUT_EVERY = 256 << 10;
const say = (line = '') => process.stdout.write(line + '\n');

async function main(): Promise<number> {
  const work = resolve('.demo');
  const out = resolve('bundles');
  await rm(work, { recursive: true, force: true });
  // the demo's origin is new every run, so its published tree is too
  for (const name of await readdir(out).catch(() => [] as string[]))
    if (name !== 'README.md') await rm(join(out, name), { recursive: true, force: true });
  const originTop = join(work, 'origin');
  say('== Origin: sample bare repositories');
  for (const repo of demoCollection()) {
    await createSampleRepo(originTop, repo);
    say(`   ${repo.path}  (${repo.description})`);
  }

  say(`\n== bundlemirror publish --toplevel ${rel(originTop)} --bundles ${rel(out)}`);
  const report = await publish({ toplevel: originTop, out });
  for (const e of report.failed) say(`   FAILED ${e.describe()}`);
  if (report.failed.length) return 1;
  for (const c of report.changed)
    say(
      `   ${c.path}: ${c.bundles.map((b) => `${b.kind} bundle ${formatBytes(b.size)}`).join(', ')}  fingerprint ${c.fingerprint.slice(0, 12)}`,
    );

  const lfsWriters = await writeDemoWriters(work);
  const server = await startServer({
    bundles: out,
    toplevel: originTop,
    host: '127.0.0.1',
    port: 0,
    log: false,
    lfsWriters,
  });
  const link = await startFaultProxy({ upstream: { host: '127.0.0.1', port: server.port }, cutAfterBytes: CUT_EVERY });
  const linkUrl = link.url('');
  try {
    say(`\n== bundlemirror serve: ${server.url}/`);
    say(`   manifest       ${server.url}/manifest.js.gz`);
    say(`   index          ${server.url}/pub/tools/alpha.git/index.json`);
    say(`   bundle list    ${server.url}/pub/tools/alpha.git/bundle-list`);
    say(`   smart HTTP     ${server.url}/git/pub/tools/alpha.git`);

    const stock = join(work, 'stock-clone');
    say('\n== Stock git: git clone --bundle-uri=<bundle-list> <smart HTTP URL>');
    await git([
      'clone',
      '--quiet',
      `--bundle-uri=${server.url}/pub/tools/alpha.git/bundle-list`,
      `${server.url}/git/pub/tools/alpha.git`,
      stock,
    ]);
    const head = (await git(['log', '-1', '--format=%h %s'], { cwd: stock })).stdout.toString().trim();
    say(`   cloned into ${rel(stock)}, HEAD ${head}`);

    say(`\n== Replica: bundlemirror pull through a link that breaks every ${formatBytes(CUT_EVERY)}`);
    const replicaTop = join(work, 'replica');
    await mkdir(replicaTop, { recursive: true });
    const configFile = join(work, 'replica.conf');
    await writeFile(
      configFile,
      `[core]\ntoplevel = ${replicaTop}\nlog = ${join(work, 'pull.log')}\n\n[remote]\nsite = ${linkUrl}/git\nmanifest = ${linkUrl}/manifest.js.gz\n\n[pull]\npull_threads = 2\n`,
    );
    const config = loadPullConfig(configFile);
    const log = createPullLog({ file: config.core.log, level: 'info', console: 'info' });
    const first = await pull(config, { log });
    const bundleBytes = report.changed.flatMap((c) => c.bundles).reduce((n, b) => n + b.size, 0);
    say(`   cloned ${first.cloned.length}, failed ${first.failed.length}; the link was cut ${link.stats.cuts} times`);
    say(
      `   bytes on the wire ${formatBytes(link.stats.bytesDownstream)} for ${formatBytes(bundleBytes)} of bundles (${(link.stats.bytesDownstream / bundleBytes).toFixed(3)}x)`,
    );

    say('\n== A push at the origin, published by the post-receive hook, pulled again');
    const alpha = join(originTop, 'pub/tools/alpha.git');
    await pushOneCommit(work, alpha);
    const hook = await publish({ toplevel: originTop, out, only: [alpha] });
    for (const c of hook.changed)
      say(`   publish ${c.path}: ${c.bundles.map((b) => `${b.kind} bundle ${formatBytes(b.size)}`).join(', ')}`);
    const before = link.stats.bytesDownstream;
    const second = await pull(config, { log });
    say(`   updated ${second.updated.join(', ')}: ${formatBytes(link.stats.bytesDownstream - before)} on the wire`);

    say('\n== Verify: replica fingerprints against the origin');
    let ok = first.failed.length === 0 && second.failed.length === 0;
    for (const repo of demoCollection()) {
      const o = await fingerprint(join(originTop, repo.path));
      const r = await fingerprint(join(replicaTop, repo.path)).catch(() => null);
      const match = r?.fingerprint === o.fingerprint;
      ok &&= match;
      say(
        `   ${match ? 'ok  ' : 'FAIL'} ${repo.path}  ${o.fingerprint}${match ? '' : ` != ${r?.fingerprint ?? 'missing'}`}`,
      );
    }

    say('\n== Bundles on demand: clone --via a service, for a repository that publishes no bundles');
    ok =
      (await demoOnDemand({ work, upstream: `${server.url}/git/pub/tools/alpha.git`, cutEvery: CUT_EVERY, say })) && ok;

    say(
      '\n== Git LFS: a large file from a work tree to the origin, through the breaking link to the replica, into a clone',
    );
    if (await gitLfsAvailable())
      ok = (await demoLfs({ work, originTop, out, server, replicaTop, config, log, say })) && ok;
    else say('   skipped: git-lfs is not installed (Debian: apt-get install git-lfs)');
    await log.flush();
    say(
      ok
        ? '\nEvery fingerprint matches: the replica holds exactly what the origin published.'
        : '\nMISMATCH: see the lines above.',
    );
    say(`Published tree: ${rel(out)}/   Replica: ${rel(replicaTop)}/   Log: ${rel(join(work, 'pull.log'))}`);
    return ok ? 0 : 1;
  } finally {
    await link.close();
    await server.close();
  }
}

async function pushOneCommit(work: string, bare: string): Promise<void> {
  const wt = join(work, 'alpha-work');
  await git(['clone', '--quiet', bare, wt]);
  await writeFile(join(wt, 'CHANGELOG'), seededBytes('demo-push', 2048).toString('base64'));
  await git(['add', 'CHANGELOG'], { cwd: wt });
  const who = {
    GIT_AUTHOR_NAME: 'Demo',
    GIT_AUTHOR_EMAIL: 'demo@example.invalid',
    GIT_COMMITTER_NAME: 'Demo',
    GIT_COMMITTER_EMAIL: 'demo@example.invalid',
  };
  await git(['commit', '--quiet', '-m', 'Add a changelog'], { cwd: wt, env: who });
  await git(['push', '--quiet', 'origin', 'main'], { cwd: wt });
}

function rel(p: string): string {
  const cwd = process.cwd();
  return p.startsWith(cwd + '/') ? p.slice(cwd.length + 1) : p;
}

process.exitCode = await main();
