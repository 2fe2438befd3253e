/**
 * The real git-lfs client for tests: a private HOME with `git lfs install`
 * (so no test depends on, or touches, the user's git config), work trees
 * that track `*.bin`, and an LFS-enabled origin served on 127.0.0.1.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { git, gitText, type GitResult } from '../../src/git/exec.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { writeManifestFile } from '../../src/manifest/manifest.js';
import { initBareRepo, tempDir } from './repos.js';

let available: Promise<boolean> | null = null;
/** True when the git-lfs binary runs here (Debian's git-lfs package). */
export function hasGitLfs(): Promise<boolean> {
  available ??= git(['lfs', 'version']).then(
    () => true,
    () => false,
  );
  return available;
}

export interface LfsClient {
  home: string;
  /** Runs git with the private HOME, an identity, and no prompts. */
  run(args: string[], opts?: { cwd?: string; okCodes?: number[] }): Promise<GitResult>;
  text(args: string[], opts?: { cwd?: string }): Promise<string>;
}

export async function lfsClient(root: string): Promise<LfsClient> {
  const home = join(root, 'home');
  await mkdir(home, { recursive: true });
  const env = {
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
    GIT_AUTHOR_NAME: 'Test',
    GIT_AUTHOR_EMAIL: 'test@example.invalid',
    GIT_COMMITTER_NAME: 'Test',
    GIT_COMMITTER_EMAIL: 'test@example.invalid',
    GIT_TERMINAL_PROMPT: '0',
    GIT_LFS_SKIP_PUSH_VERIFY: '0',
  };
  const client: LfsClient = {
    home,
    run: (args, opts = {}) => git(args, { cwd: opts.cwd, env, okCodes: opts.okCodes }),
    text: (args, opts = {}) => gitText(args, { cwd: opts.cwd, env }),
  };
  await client.run(['lfs', 'install', '--skip-repo']);
  return client;
}

/** `http://name:token@host:port/git/<repo>/info/lfs` */
export function lfsUrl(server: RunningServer, repoPath: string, cred?: { name: string; token: string }): string {
  const u = new URL(`${server.url}/git${repoPath}/info/lfs`);
  if (cred) {
    u.username = cred.name;
    u.password = cred.token;
  }
  return u.toString();
}

/** A work tree pushing git objects into `bare` (on disk) and LFS objects to `url`. */
export async function lfsWorkTree(client: LfsClient, root: string, bare: string, url: string): Promise<string> {
  const dir = join(root, `wt-${randomBytes(4).toString('hex')}`);
  await client.run(['init', '--quiet', '--initial-branch', 'main', dir]);
  await client.run(['remote', 'add', 'origin', bare], { cwd: dir });
  await client.run(['config', 'lfs.url', url], { cwd: dir });
  await client.run(['lfs', 'track', '*.bin'], { cwd: dir });
  await client.run(['add', '.gitattributes'], { cwd: dir });
  return dir;
}

/** A work tree of the origin's `/pub/assets.git` whose LFS endpoint carries a writer's credentials (`token`: another to be refused). */
export function writerWorkTree(
  o: LfsOrigin,
  name: keyof typeof WRITERS,
  token: string = WRITERS[name],
): Promise<string> {
  return lfsWorkTree(o.client, o.dir, o.bare, lfsUrl(o.server, '/pub/assets.git', { name, token }));
}

/** Writes `bytes` of random content as `name`, commits it; returns the content's sha256-named oid and bytes. */
export async function commitLfsFile(client: LfsClient, dir: string, name: string, bytes: number): Promise<Buffer> {
  const body = randomBytes(bytes);
  await writeFile(join(dir, name), body);
  await client.run(['add', '--', name], { cwd: dir });
  await client.run(['commit', '--quiet', '-m', `add ${name}`], { cwd: dir });
  return body;
}

export const WRITERS = { alice: 'alice-token-0123456789', bob: 'bob-token-9876543210' };

export interface LfsOrigin {
  dir: string;
  toplevel: string;
  out: string;
  bare: string;
  writersFile: string;
  server: RunningServer;
  client: LfsClient;
}

/** An origin toplevel with one bare repository (`/pub/assets.git`), served with writers alice and bob. */
export async function startLfsOrigin(t: ExecutionContext): Promise<LfsOrigin> {
  const { dir, cleanup } = await tempDir('bm-lfs-');
  t.teardown(cleanup);
  const toplevel = join(dir, 'origin');
  const out = join(dir, 'published');
  await mkdir(out, { recursive: true });
  const bare = await initBareRepo(join(toplevel, 'pub/assets.git'));
  // serve answers only for the repositories its manifest lists; this one has no refs yet, so publish would leave it out
  await writeManifestFile(join(out, 'manifest.js.gz'), { '/pub/assets.git': { modified: 0 } });
  const writersFile = join(dir, 'writers');
  await writeFile(
    writersFile,
    `# LFS writers\n${Object.entries(WRITERS)
      .map(([n, tk]) => `${n} ${tk}`)
      .join('\n')}\n`,
  );
  const server = await startServer({
    bundles: out,
    toplevel,
    host: '127.0.0.1',
    port: 0,
    log: false,
    lfsWriters: writersFile,
  });
  t.teardown(() => server.close());
  const client = await lfsClient(dir);
  return { dir, toplevel, out, bare, writersFile, server, client };
}
