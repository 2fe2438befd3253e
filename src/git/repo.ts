/**
 * Typed git operations on bare repositories. Callers pass absolute paths
 * and names that were already checked (see refname.ts); every name that
 * could look like an option is still placed after `--end-of-options` or
 * inside a `--flag=value` argument.
 */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../fs/atomic.js';
import { BundlemirrorError } from '../errors.js';
import { git, gitText, type GitOptions } from './exec.js';
import { isObjectId, refNameProblem } from './refname.js';

export interface Ref {
  oid: string;
  name: string;
}

/** Raw `git show-ref` output: the exact bytes the fingerprint is computed over. */
export async function showRef(gitDir: string, repo?: string): Promise<string> {
  const r = await git(['show-ref'], { gitDir, repo, okCodes: [1] });
  return r.stdout.toString('utf8');
}

export function parseShowRef(raw: string): Ref[] {
  const refs: Ref[] = [];
  for (const line of raw.split('\n')) {
    if (!line) continue;
    refs.push({ oid: line.slice(0, 40), name: line.slice(41) });
  }
  return refs;
}

/** grokmirror's fingerprint: SHA-1 of the exact `git show-ref` output. */
export function fingerprintOf(showRefOutput: string): string {
  return createHash('sha1').update(showRefOutput, 'utf8').digest('hex');
}

/** Renders refs as `git show-ref` would: sorted by name, one `<oid> <name>\n` each. */
export function formatShowRef(refs: Ref[]): string {
  return [...refs]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((r) => `${r.oid} ${r.name}\n`)
    .join('');
}

export async function fingerprint(
  gitDir: string,
  repo?: string,
): Promise<{ fingerprint: string; refs: Ref[]; raw: string }> {
  const raw = await showRef(gitDir, repo);
  return { fingerprint: fingerprintOf(raw), refs: parseShowRef(raw), raw };
}

/** HEAD as grokmirror writes it: `ref: refs/heads/x`, or an object id when detached. */
export async function readHead(gitDir: string, repo?: string): Promise<string | null> {
  const sym = await git(['symbolic-ref', '-q', 'HEAD'], { gitDir, repo, okCodes: [1, 128] });
  const name = sym.stdout.toString('utf8').trim();
  if (sym.code === 0 && name) return `ref: ${name}`;
  const oid = await git(['rev-parse', '-q', '--verify', 'HEAD'], { gitDir, repo, okCodes: [1, 128] });
  const id = oid.stdout.toString('utf8').trim();
  return oid.code === 0 && isObjectId(id) ? id : null;
}

/** What HEAD (as readHead gives it) points at among `refs`: its branch's object, a detached commit, or nothing (an unborn branch). */
export function headObject(refs: readonly Ref[], head: string | null): string | null {
  if (head?.startsWith('ref: ')) return refs.find((r) => r.name === head.slice(5))?.oid ?? null;
  return head && isObjectId(head) ? head : null;
}

export async function setHead(gitDir: string, head: string, repo?: string): Promise<void> {
  if (head.startsWith('ref: ')) {
    const target = head.slice(5);
    const problem = refNameProblem(target);
    if (problem)
      throw new BundlemirrorError('E_UNSAFE_NAME', `HEAD target ${JSON.stringify(target)} ${problem}`, { repo });
    await git(['symbolic-ref', 'HEAD', target], { gitDir, repo });
    return;
  }
  if (!isObjectId(head))
    throw new BundlemirrorError(
      'E_UNSAFE_NAME',
      `HEAD value ${JSON.stringify(head)} is neither a ref nor an object id`,
      { repo },
    );
  await git(['update-ref', '--no-deref', 'HEAD', head], { gitDir, repo });
}

export async function configGet(gitDir: string, key: string, repo?: string): Promise<string | null> {
  const r = await git(['config', '--get', key], { gitDir, repo, okCodes: [1] });
  return r.code === 0 ? r.stdout.toString('utf8').replace(/\n$/, '') : null;
}

export async function configSet(gitDir: string, key: string, value: string, repo?: string): Promise<void> {
  await git(['config', key, value], { gitDir, repo });
}

export async function configUnset(gitDir: string, key: string, repo?: string): Promise<void> {
  await git(['config', '--unset-all', key], { gitDir, repo, okCodes: [5] });
}

/**
 * What a mirror's own config says, beyond `git init --bare`, so that it
 * says what every command on it already gets from the git door (exec.ts):
 * hooks only from `hooksDir` (an empty directory the replica owns) and no
 * reflogs. protectMirror writes these; the bench's fleet writes them
 * directly, from here, so its replicas cost what a pulled one does.
 */
export function mirrorConfig(hooksDir: string): [key: string, value: string][] {
  return [
    ['core.hooksPath', hooksDir],
    ['core.logAllRefUpdates', 'false'],
  ];
}

/**
 * What a sync needs of a repository's config, read by one `git config`
 * process: the mirrorConfig() keys as the repository's own config has them,
 * the owner (`gitweb.owner`) as `git config --get` answers (the last value
 * of any scope), and how refs are stored.
 */
export interface MirrorConfig {
  /** The repository's own values of the mirrorConfig() keys, by lower-cased key (absent: not set there). */
  protection: ReadonlyMap<string, string>;
  owner: string | null;
  /** `extensions.refStorage`, lower-cased: `files` unless a reftable repository says otherwise. */
  refStorage: string;
}

const PROTECTION_KEYS = mirrorConfig('').map(([key]) => key.toLowerCase());

export async function readMirrorConfig(gitDir: string, repo?: string): Promise<MirrorConfig> {
  const keys = [...PROTECTION_KEYS, 'gitweb.owner', 'extensions.refstorage'];
  // -z: a value may hold a newline; --show-scope: the door's own `-c core.hooksPath` (scope "command") is not the repository's
  const r = await git(
    ['config', '--show-scope', '-z', '--get-regexp', `^(${keys.map((k) => k.replace(/\./g, '\\.')).join('|')})$`],
    { gitDir, repo, okCodes: [1] },
  );
  const protection = new Map<string, string>();
  let owner: string | null = null;
  let refStorage = 'files';
  const fields = r.stdout.toString('utf8').split('\0');
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const scope = fields[i]!;
    const entry = fields[i + 1]!;
    const nl = entry.indexOf('\n');
    // a key without `=` has no value; `git config --get` prints it as an empty line
    const key = nl < 0 ? entry : entry.slice(0, nl);
    const value = nl < 0 ? '' : entry.slice(nl + 1);
    // later entries override earlier ones, as git reads them
    if (key === 'gitweb.owner' && scope !== 'command') owner = value;
    else if (key === 'extensions.refstorage' && scope !== 'command') refStorage = value.trim().toLowerCase() || 'files';
    else if (scope === 'local' && PROTECTION_KEYS.includes(key)) protection.set(key, value);
  }
  return { protection, owner, refStorage };
}

/**
 * Makes a mirror's config say mirrorConfig(), so that a git run by someone
 * else on the mirror (an admin, a cron job, `serve`) runs no hook an origin
 * could have planted either. One git process when already so; returns the
 * config as it now is, so a sync need not read it again.
 */
export async function protectMirror(gitDir: string, hooksDir: string, repo?: string): Promise<MirrorConfig> {
  const have = await readMirrorConfig(gitDir, repo);
  const protection = new Map(have.protection);
  for (const [key, value] of mirrorConfig(hooksDir)) {
    if (have.protection.get(key.toLowerCase()) === value) continue;
    await git(['config', key, value], { gitDir, repo });
    protection.set(key.toLowerCase(), value);
  }
  return { ...have, protection };
}

export async function initBare(dir: string, repo?: string): Promise<void> {
  await git(['init', '--bare', '--quiet', '--end-of-options', dir], { repo });
}

export interface RefUpdate {
  name: string;
  /** New object id, or null to delete. */
  oid: string | null;
}

/** Refuses a ref name or object id nothing should be written with (the index is not trusted). */
function checkRefUpdate(u: RefUpdate, repo?: string): void {
  const problem = refNameProblem(u.name);
  if (problem) throw new BundlemirrorError('E_UNSAFE_NAME', `ref ${JSON.stringify(u.name)} ${problem}`, { repo });
  if (u.oid !== null && !isObjectId(u.oid))
    throw new BundlemirrorError('E_UNSAFE_NAME', `ref ${u.name}: ${JSON.stringify(u.oid)} is not an object id`, {
      repo,
    });
}

/** The updates that turn refs `current` into `wanted` (name to id): moved and new refs, then deleted ones. */
export function refUpdatesTo(current: readonly Ref[], wanted: ReadonlyMap<string, string>): RefUpdate[] {
  const now = new Map(current.map((r) => [r.name, r.oid]));
  const updates: RefUpdate[] = [];
  for (const [name, oid] of wanted) if (now.get(name) !== oid) updates.push({ name, oid });
  for (const r of current) if (!wanted.has(r.name)) updates.push({ name: r.name, oid: null });
  return updates;
}

/**
 * Applies every update in one `git update-ref --stdin` transaction: either
 * all refs move or none does. Names and ids are validated first.
 */
export async function updateRefs(gitDir: string, updates: RefUpdate[], repo?: string): Promise<void> {
  if (updates.length === 0) return;
  const lines: string[] = ['start'];
  for (const u of updates) {
    checkRefUpdate(u, repo);
    lines.push(u.oid === null ? `delete ${u.name}` : `update ${u.name} ${u.oid}`);
  }
  lines.push('prepare', 'commit', '');
  await git(['update-ref', '--stdin'], { gitDir, repo, input: lines.join('\n') });
}

/**
 * The first refs of a new repository, written as one `packed-refs` file, as
 * `git clone` writes the refs it receives: `update-ref` makes a file per ref
 * (with a lock and a rename each, and for `refs/pull/N/head` a directory
 * each), which for a few thousand refs costs half a second and tens of
 * megabytes of directories. Only for a repository nobody else uses yet (a
 * new one in staging) and that has no ref: otherwise, and when one name is
 * a directory of another (git refuses that pair; let it say so), or when
 * refs are not kept in files (reftable), it is `updateRefs`. Names and ids
 * are checked as `updateRefs` checks them.
 */
export async function setInitialRefs(gitDir: string, refs: readonly Ref[], repo?: string): Promise<void> {
  const updates = refs.map((r) => ({ name: r.name, oid: r.oid }));
  for (const u of updates) checkRefUpdate(u, repo);
  const names = new Set(refs.map((r) => r.name));
  const nested = refs.some((r) => {
    for (let i = r.name.indexOf('/'); i > 0; i = r.name.indexOf('/', i + 1))
      if (names.has(r.name.slice(0, i))) return true;
    return false;
  });
  if (
    nested ||
    names.size !== refs.length ||
    (await showRef(gitDir, repo)) !== '' ||
    (await packedRefsExist(gitDir)) ||
    (await refStorage(gitDir, repo)) !== 'files'
  )
    return updateRefs(gitDir, updates, repo);
  if (refs.length === 0) return;
  // git's own order (bytes), so the file can say it is sorted
  const sorted = [...refs].sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
  const text = '# pack-refs with: sorted \n' + sorted.map((r) => `${r.oid} ${r.name}\n`).join('');
  await writeFileAtomic(join(gitDir, 'packed-refs'), text);
}

/**
 * How the repository stores its refs: a reftable repository (a user's
 * `init.defaultRefFormat`, or a newer git's default) never reads a
 * packed-refs file, so one written there would leave it without refs.
 */
async function refStorage(gitDir: string, repo?: string): Promise<string> {
  const r = await git(['config', '--get', 'extensions.refStorage'], { gitDir, repo, okCodes: [1] });
  return r.stdout.toString('utf8').trim().toLowerCase() || 'files';
}

async function packedRefsExist(gitDir: string): Promise<boolean> {
  return stat(join(gitDir, 'packed-refs')).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return false;
      throw err;
    },
  );
}

/** Which of these object ids exist in the repository (as commits or any object). */
export async function existingObjects(
  gitDir: string,
  oids: string[],
  repo?: string,
  env?: Record<string, string>,
): Promise<Set<string>> {
  const present = new Set<string>();
  if (oids.length === 0) return present;
  const r = await git(['cat-file', '--batch-check=%(objectname) %(objecttype)'], {
    gitDir,
    repo,
    env,
    input: oids.join('\n') + '\n',
  });
  for (const line of r.stdout.toString('utf8').split('\n')) {
    const [oid, type] = line.split(' ');
    if (oid && type && type !== 'missing' && isObjectId(oid)) present.add(oid);
  }
  return present;
}

/**
 * Environment that lets git read another repository's objects as if they
 * were this one's (a forkgroup member seeing its parent), for one command,
 * without writing an alternates file. Null when the path cannot be passed
 * that way (git splits the variable at ':').
 */
export function borrowObjectsFrom(otherGitDir: string): Record<string, string> | null {
  if (/[:"\n]/.test(otherGitDir)) return null;
  return { GIT_ALTERNATE_OBJECT_DIRECTORIES: `${otherGitDir}/objects` };
}

/**
 * The fewest of `oids` whose histories together contain the histories of
 * all of them: tags are peeled to their commits, commits reachable from
 * another are dropped (`git merge-base --independent`), and each remaining
 * commit is named by one of the given ids (a tag keeps its tag id). Ids
 * that do not lead to a commit are left out.
 */
export async function independentTips(
  gitDir: string,
  oids: string[],
  repo?: string,
  env?: Record<string, string>,
): Promise<string[]> {
  if (oids.length === 0) return [];
  const peeled = await git(['cat-file', '--batch-check=%(objectname) %(rest)'], {
    gitDir,
    repo,
    env,
    input: oids.map((o) => `${o}^{commit} ${o}`).join('\n') + '\n',
  });
  const byCommit = new Map<string, string>();
  for (const line of peeled.stdout.toString('utf8').split('\n')) {
    const [commit, given] = line.split(' ');
    if (!commit || !given || !isObjectId(commit) || !isObjectId(given)) continue;
    // the commit itself when it is one of the ids, else the first tag that points at it
    if (!byCommit.has(commit) || given === commit) byCommit.set(commit, given);
  }
  if (byCommit.size <= 1) return [...byCommit.values()];
  const out = await gitText(['merge-base', '--independent', ...[...byCommit.keys()].sort()], { gitDir, repo, env });
  return out
    .split('\n')
    .filter((c) => byCommit.has(c))
    .map((c) => byCommit.get(c)!)
    .sort();
}

/**
 * True when every object reachable from `tips` is present (stopping at what
 * existing refs already reach). Run after unbundling and before refs move,
 * so a bundle with a short pack can never leave a ref pointing at nothing.
 */
export async function isConnected(gitDir: string, tips: string[], repo?: string): Promise<boolean> {
  if (tips.length === 0) return true;
  const r = await git(['rev-list', '--objects', '--quiet', '--stdin', '--not', '--all'], {
    gitDir,
    repo,
    input: tips.join('\n') + '\n',
    okCodes: [1, 128],
  });
  return r.code === 0;
}

/** Creates a bundle of the given revisions (`--all`, or tips plus `^prerequisite` lines). */
export async function createBundle(
  gitDir: string,
  outFile: string,
  revs: 'all' | string[],
  repo?: string,
): Promise<void> {
  if (revs === 'all') {
    await git(['bundle', 'create', '--quiet', outFile, '--all'], { gitDir, repo });
    return;
  }
  await git(['bundle', 'create', '--quiet', outFile, '--stdin'], { gitDir, repo, input: revs.join('\n') + '\n' });
}

/**
 * Imports a bundle's objects without touching any ref; refs are then set
 * from index.json in one transaction. git refuses (exit 1, nothing written)
 * when prerequisites are missing.
 */
export async function unbundle(
  gitDir: string,
  bundleFile: string,
  repo?: string,
  opts: Pick<GitOptions, 'signal'> = {},
): Promise<void> {
  await git(['bundle', 'unbundle', bundleFile], { gitDir, repo, signal: opts.signal });
}

export interface IndexedPack {
  /** The pack's name (`objects/pack/pack-<hash>.pack`): the SHA-1 of its content, its last 20 bytes. */
  packHash: string;
  /** git proved every object the pack's objects point to is in the pack (`git clone` skips its connectivity walk then). */
  selfContainedAndConnected: boolean;
}

/**
 * `git index-pack --stdin --fix-thin --check-self-contained-and-connected`
 * on a pack streamed in (a bundle's pack, while it downloads): writes the
 * pack and its index into the repository and touches no ref. That flag
 * makes git walk every link of every object it receives and die when a
 * linked object is neither in the pack nor in the repository; it exits 1
 * when the pack is fine but links to objects the repository already had.
 */
export async function indexPack(
  gitDir: string,
  pack: NodeJS.ReadableStream,
  repo?: string,
  opts: Pick<GitOptions, 'signal'> & {
    /** false: a delta whose base is not in the pack fails it instead of being completed from the repository. */
    thin?: boolean;
  } = {},
): Promise<IndexedPack> {
  const thin = opts.thin === false ? [] : ['--fix-thin'];
  const r = await git(['index-pack', '--stdin', ...thin, '--check-self-contained-and-connected'], {
    gitDir,
    repo,
    stdin: pack,
    okCodes: [1],
    signal: opts.signal,
  });
  const m = /^(?:pack|keep)\t([0-9a-f]{40})$/m.exec(r.stdout.toString('utf8'));
  if (!m)
    throw new BundlemirrorError(
      'E_GIT',
      `git index-pack wrote no pack (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-2).join(' / ')}`,
      { repo },
    );
  return { packHash: m[1]!, selfContainedAndConnected: r.code === 0 };
}

export interface FetchOptions {
  prune?: boolean;
  repo?: string;
  onProgress?: (line: string) => void;
  signal?: AbortSignal;
}

/** True for what git would open as a local repository: `file:` URLs and paths (no scheme or host before the first `/`). */
export function isLocalGitUrl(url: string): boolean {
  return /^file:/i.test(url) || !/^[^/]*:/.test(url);
}

/**
 * Fetches every ref from a URL into the same names (a mirror fetch). Never
 * from a local repository: git trusts one fully (its config, alternates
 * reaching any repository on this machine), nothing a mirror may do with
 * someone else's files.
 */
export async function fetchMirror(gitDir: string, url: string, opts: FetchOptions = {}): Promise<void> {
  if (url.startsWith('-'))
    throw new BundlemirrorError('E_UNSAFE_NAME', `fetch URL ${JSON.stringify(url)} starts with "-"`, {
      repo: opts.repo,
    });
  if (isLocalGitUrl(url))
    throw new BundlemirrorError('E_CONFIG', `git fetch from a local repository (${url}) is not supported`, {
      repo: opts.repo,
      hint: "name the origin's git URL over the network in [bundlemirror] git_url",
    });
  // --atomic: a fetch killed or failing half-way moves no ref at all; no file:// however the server redirects
  const args = [
    '-c',
    'protocol.file.allow=never',
    'fetch',
    '--quiet',
    '--atomic',
    '--no-tags',
    '--no-write-fetch-head',
  ];
  if (opts.prune) args.push('--prune');
  args.push('--end-of-options', url, '+refs/*:refs/*');
  await git(args, { gitDir, repo: opts.repo, onStderr: opts.onProgress, signal: opts.signal });
}

/**
 * Root commits reachable from `tips` but not from `known` (forkgroup
 * detection). With `known` set to the tips of the last publish this walks
 * only the new history, so a small push costs little however large the
 * repository. Ids in `known` that no longer exist must be filtered first.
 */
export async function rootCommits(
  gitDir: string,
  tips: string[],
  known: string[] = [],
  repo?: string,
): Promise<string[]> {
  if (tips.length === 0) return [];
  const input = [...tips, ...known.map((k) => `^${k}`)].join('\n') + '\n';
  const out = await gitText(['rev-list', '--max-parents=0', '--stdin'], { gitDir, repo, input });
  return out ? [...new Set(out.split('\n'))].sort() : [];
}

export { git, gitText };
