/**
 * The demo's Git LFS part: a work tree pushes a large file with the real
 * git-lfs client to the origin's LFS server, publish lists and links it,
 * pull brings it to the replica through the breaking link, and a clone
 * from the replica's own `serve` checks out the real bytes. git-lfs runs
 * with a private HOME under .demo, so the user's git config is untouched.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { git } from '../git/exec.js';
import { publish } from '../origin/publish.js';
import { pull, type PullReport } from '../replica/pull.js';
import type { PullConfig } from '../replica/config/config.js';
import type { PullLog } from '../replica/log.js';
import { startServer, type RunningServer } from '../server/server.js';
import { formatBytes } from '../format/bytes.js';
import { seededBytes } from './samples.js';

const LFS_REPO = '/pub/media/assets.git';
const LFS_WRITER = { name: 'demo', token: 'demo-writer-token-0001' };
const FILE = 'intro-video.bin';
const SIZE = 1_500_000;

export interface LfsDemoContext {
  work: string;
  originTop: string;
  out: string;
  server: RunningServer;
  replicaTop: string;
  config: PullConfig;
  log: PullLog;
  say: (line?: string) => void;
}

export async function gitLfsAvailable(): Promise<boolean> {
  return git(['lfs', 'version']).then(
    () => true,
    () => false,
  );
}

/** The writers file the demo's origin serve reads. */
export async function writeDemoWriters(work: string): Promise<string> {
  const file = join(work, 'lfs-writers');
  await mkdir(work, { recursive: true });
  await writeFile(file, `${LFS_WRITER.name} ${LFS_WRITER.token}\n`, { mode: 0o600 });
  return file;
}

/** True when the file arrived in the clone byte for byte. */
export async function demoLfs(c: LfsDemoContext): Promise<boolean> {
  const home = join(c.work, 'lfs-home');
  await mkdir(home, { recursive: true });
  const env = {
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
    GIT_AUTHOR_NAME: 'Demo',
    GIT_AUTHOR_EMAIL: 'demo@example.invalid',
    GIT_COMMITTER_NAME: 'Demo',
    GIT_COMMITTER_EMAIL: 'demo@example.invalid',
  };
  const run = (args: string[], cwd?: string) => git(args, { cwd, env });
  await run(['lfs', 'install', '--skip-repo']);

  const bare = join(c.originTop, ...LFS_REPO.slice(1).split('/'));
  await git(['init', '--bare', '--quiet', '--initial-branch', 'main', bare]);
  const wt = join(c.work, 'assets-work');
  const lfsUrl = new URL(`${c.server.url}/git${LFS_REPO}/info/lfs`);
  lfsUrl.username = LFS_WRITER.name;
  lfsUrl.password = LFS_WRITER.token;
  await run(['init', '--quiet', '--initial-branch', 'main', wt]);
  await run(['remote', 'add', 'origin', bare], wt);
  await run(['config', 'lfs.url', lfsUrl.toString()], wt);
  await run(['lfs', 'track', '*.bin'], wt);
  const body = seededBytes('demo-lfs', SIZE);
  await writeFile(join(wt, FILE), body);
  await run(['add', '.gitattributes', FILE], wt);
  await run(['commit', '--quiet', '-m', 'Add the intro video'], wt);
  await run(['push', '--quiet', 'origin', 'main'], wt);
  const oid = createHash('sha256').update(body).digest('hex');
  c.say(
    `   git lfs push: ${FILE} (${formatBytes(SIZE)}) uploaded as ${oid.slice(0, 12)} to ${c.server.url}/git${LFS_REPO}/info/lfs`,
  );

  const published = await publish({ toplevel: c.originTop, out: c.out, only: [bare] });
  for (const r of published.lfs)
    c.say(
      `   publish ${r.path}: ${r.added.length} LFS object(s), ${formatBytes(r.added.reduce((n, o) => n + o.size, 0))}, hard-linked into the tree`,
    );

  const report: PullReport = await pull(c.config, { log: c.log });
  if (report.failed.length) return false;

  // the replica serves its own repositories: those of the manifest its pull wrote
  const replica = await startServer({ toplevel: c.replicaTop, host: '127.0.0.1', port: 0, log: false });
  try {
    const clone = join(c.work, 'assets-clone');
    await run(['clone', '--quiet', `${replica.url}/git${LFS_REPO}`, clone]);
    const same = (await readFile(join(clone, FILE))).equals(body);
    c.say(
      `   git clone ${replica.url}/git${LFS_REPO} (the replica's serve): ${FILE} ${same ? 'checked out with its real content' : 'DIFFERS'}`,
    );
    return same;
  } finally {
    await replica.close();
  }
}
