/**
 * The replica planner, rule by rule. No git, no disk, no network: the
 * planner is a pure function of the remote manifest, what is on disk and
 * recorded, and the config.
 */
import test from 'ava';
import type { Manifest, ManifestEntry } from '../src/manifest/manifest.js';
import { fnmatch } from '../src/glob/fnmatch.js';
import {
  planSync,
  type LocalState,
  type PlanConfig,
  type PlanOptions,
  type SyncAction,
  type SyncInput,
} from '../src/replica/plan/planner.js';
import type { RepoState } from '../src/replica/state-file.js';

const fp = (n: number): string => n.toString(16).padStart(40, '0');

function entry(n: number, extra: Partial<ManifestEntry> = {}): ManifestEntry {
  return {
    fingerprint: fp(n),
    modified: 1_700_000_000,
    head: 'ref: refs/heads/main',
    description: null,
    owner: null,
    ...extra,
  };
}

/** Recorded state that matches `entry(n)` exactly. */
function current(n: number, extra: Partial<RepoState> = {}): RepoState {
  return {
    fingerprint: fp(n),
    head: 'ref: refs/heads/main',
    description: null,
    owner: null,
    symlinks: [],
    lastSuccess: '2026-11-01T00:00:00.000Z',
    ...extra,
  };
}

const CONFIG: PlanConfig = {
  pull: { include: ['*'], exclude: [], nopurge: [], ffonly: [], purgeprotect: 5, defaultOwner: 'Grokmirror' },
};
const OPTS: PlanOptions = { force: false, purge: false, forcePurge: false };

function plan(opts: {
  remote: Manifest;
  onDisk?: string[];
  repos?: Record<string, RepoState>;
  alternates?: Record<string, string[]>;
  localManifest?: Manifest;
  config?: Partial<PlanConfig['pull']>;
  options?: Partial<PlanOptions>;
  changed?: string[];
}) {
  const local: LocalState = {
    repos: opts.repos ?? {},
    onDisk: new Set(opts.onDisk ?? []),
    alternates: opts.alternates ?? {},
  };
  if (opts.localManifest) local.localManifest = opts.localManifest;
  const input: SyncInput = {
    remote: opts.remote,
    local,
    config: { pull: { ...CONFIG.pull, ...opts.config } },
    options: { ...OPTS, ...opts.options },
  };
  if (opts.changed) input.changed = new Set(opts.changed);
  return planSync(input);
}

function kinds(actions: SyncAction[]): Record<string, string> {
  return Object.fromEntries(actions.map((a) => [a.path, a.kind]));
}

function action(actions: SyncAction[], path: string): SyncAction {
  const a = actions.find((x) => x.path === path);
  if (!a) throw new Error(`no action for ${path}`);
  return a;
}

/** `count` repositories /r/000.git ... on disk and current, for purge arithmetic. */
function collection(count: number): { remote: Manifest; repos: Record<string, RepoState>; onDisk: string[] } {
  const remote: Manifest = {};
  const repos: Record<string, RepoState> = {};
  const onDisk: string[] = [];
  for (let i = 0; i < count; i++) {
    const p = `/r/${String(i).padStart(3, '0')}.git`;
    remote[p] = entry(i + 1);
    repos[p] = current(i + 1);
    onDisk.push(p);
  }
  return { remote, repos, onDisk };
}

// ---------------------------------------------------------------- globs

test('glob: * matches across slashes, as Python fnmatch does', (t) => {
  t.true(fnmatch('/pub/scm/linux/kernel/git/torvalds/linux.git', '*'));
  t.true(fnmatch('/pub/scm/linux.git', '/pub/*'));
  t.true(fnmatch('/a/b/linux-2.4.git', '*/linux-2.4*'));
  t.false(fnmatch('/pub/a.git', '/pub/*.txt'));
});

test('glob: ?, [seq], [!seq] and ranges', (t) => {
  t.true(fnmatch('/a.git', '/?.git'));
  t.true(fnmatch('/b.git', '/[abc].git'));
  t.false(fnmatch('/d.git', '/[abc].git'));
  t.true(fnmatch('/d.git', '/[!abc].git'));
  t.true(fnmatch('/q.git', '/[a-z].git'));
  t.false(fnmatch('/Q.git', '/[a-z].git'), 'case-sensitive');
  t.true(fnmatch('/].git', '/[]].git'), '] first in a set is literal');
  t.true(fnmatch('/-.git', '/[a-].git'), '- last in a set is literal');
  t.true(fnmatch('/^.git', '/[^x].git'), '[^x] means ^ or x, not negation');
  t.false(fnmatch('/b.git', '/[c-a].git'), 'a reversed range matches nothing');
});

test('glob: characters special to regular expressions are literal; so is a [ without ]', (t) => {
  t.true(fnmatch('/a.b+c(d)|e$.git', '/a.b+c(d)|e$.git'));
  t.false(fnmatch('/aXb', '/a.b'));
  t.true(fnmatch('/[x.git', '/[x.git'));
  t.true(fnmatch('/a\\b', '/a\\b'), 'backslash is an ordinary character');
  t.false(fnmatch('/pub/a.git', ''), 'an empty pattern matches nothing but the empty name');
});

// ---------------------------------------------------------------- clone / update / skip

test('a repository in the manifest but not on disk is cloned', (t) => {
  const p = plan({ remote: { '/a.git': entry(1) } });
  t.like(action(p.actions, '/a.git'), { kind: 'clone' });
  t.is(p.summary.clone, 1);
});

test('a repository whose recorded fingerprint and metadata match is skipped, with a reason', (t) => {
  const p = plan({ remote: { '/a.git': entry(1) }, onDisk: ['/a.git'], repos: { '/a.git': current(1) } });
  const a = action(p.actions, '/a.git');
  t.is(a.kind, 'skip');
  t.regex(a.reason, /fingerprint .* matches/);
});

test('a changed fingerprint means update', (t) => {
  const p = plan({ remote: { '/a.git': entry(2) }, onDisk: ['/a.git'], repos: { '/a.git': current(1) } });
  t.like(action(p.actions, '/a.git'), { kind: 'update', why: 'fingerprint-changed' });
});

test('a repository on disk with no recorded state is updated (state.json may have been deleted)', (t) => {
  const p = plan({ remote: { '/a.git': entry(1) }, onDisk: ['/a.git'] });
  t.like(action(p.actions, '/a.git'), { kind: 'update', why: 'no-state' });
});

test('a repository whose last attempt failed is retried even when fingerprints match', (t) => {
  const repos = {
    '/a.git': current(1, {
      lastError: { message: 'connection reset', code: 'E_DOWNLOAD', at: '2026-11-02T00:00:00Z' },
      failures: 1,
    }),
  };
  const p = plan({ remote: { '/a.git': entry(1) }, onDisk: ['/a.git'], repos });
  const a = action(p.actions, '/a.git');
  t.like(a, { kind: 'update', why: 'failed-last-run' });
  t.regex(a.reason, /connection reset/);
});

test('a recorded null fingerprint (never verified) means update', (t) => {
  const p = plan({
    remote: { '/a.git': entry(1) },
    onDisk: ['/a.git'],
    repos: { '/a.git': current(1, { fingerprint: null }) },
  });
  t.like(action(p.actions, '/a.git'), { kind: 'update', why: 'unverified' });
});

test('a manifest entry without a fingerprint counts as changed', (t) => {
  const p = plan({
    remote: { '/a.git': entry(1, { fingerprint: null }), '/b.git': entry(2, { fingerprint: undefined }) },
    onDisk: ['/a.git'],
    repos: { '/a.git': current(1) },
  });
  t.like(action(p.actions, '/a.git'), { kind: 'update', why: 'no-remote-fingerprint' });
  t.like(action(p.actions, '/b.git'), { kind: 'clone' });
});

test('--force updates every selected repository on disk; missing ones are still clones', (t) => {
  const p = plan({
    remote: { '/a.git': entry(1), '/b.git': entry(2) },
    onDisk: ['/a.git'],
    repos: { '/a.git': current(1) },
    options: { force: true },
  });
  t.deepEqual(kinds(p.actions), { '/a.git': 'update', '/b.git': 'clone' });
  t.like(action(p.actions, '/a.git'), { why: 'forced' });
});

// ---------------------------------------------------------------- metadata

test('changed head, description, owner or symlinks alone mean a metadata action naming them', (t) => {
  const p = plan({
    remote: {
      '/head.git': entry(1, { head: 'ref: refs/heads/next' }),
      '/desc.git': entry(2, { description: 'A new description' }),
      '/owner.git': entry(3, { owner: 'Linus' }),
      '/links.git': entry(4, { symlinks: ['/old/links.git'] }),
    },
    onDisk: ['/head.git', '/desc.git', '/owner.git', '/links.git'],
    repos: { '/head.git': current(1), '/desc.git': current(2), '/owner.git': current(3), '/links.git': current(4) },
  });
  t.like(action(p.actions, '/head.git'), { kind: 'metadata', fields: ['head'] });
  t.like(action(p.actions, '/desc.git'), { kind: 'metadata', fields: ['description'] });
  t.like(action(p.actions, '/owner.git'), { kind: 'metadata', fields: ['owner'] });
  t.like(action(p.actions, '/links.git'), { kind: 'metadata', fields: ['symlinks'] });
  t.is(p.summary.metadata, 4);
});

test('a missing owner means default_owner on both sides', (t) => {
  const p = plan({
    remote: { '/a.git': entry(1, { owner: null }), '/b.git': entry(2, { owner: 'Grokmirror' }) },
    onDisk: ['/a.git', '/b.git'],
    repos: { '/a.git': current(1, { owner: 'Grokmirror' }), '/b.git': current(2, { owner: null }) },
  });
  t.deepEqual(kinds(p.actions), { '/a.git': 'skip', '/b.git': 'skip' });
});

test('symlinks compare as sets', (t) => {
  const p = plan({
    remote: { '/a.git': entry(1, { symlinks: ['/y.git', '/x.git'] }) },
    onDisk: ['/a.git'],
    repos: { '/a.git': current(1, { symlinks: ['/x.git', '/y.git'] }) },
  });
  t.is(action(p.actions, '/a.git').kind, 'skip');
});

test("metadata missing from the state falls back to the replica's last manifest", (t) => {
  const state: RepoState = { fingerprint: fp(1) }; // e.g. rebuilt from the fingerprint only
  const p = plan({
    remote: { '/a.git': entry(1, { description: 'kernel' }), '/b.git': entry(2, { description: 'kernel' }) },
    onDisk: ['/a.git', '/b.git'],
    repos: { '/a.git': state, '/b.git': { fingerprint: fp(2) } },
    localManifest: { '/a.git': entry(1, { description: 'kernel' }), '/b.git': entry(2, { description: 'old' }) },
  });
  t.is(action(p.actions, '/a.git').kind, 'skip');
  t.like(action(p.actions, '/b.git'), { kind: 'metadata', fields: ['description'] });
});

test('an update also lists the metadata that changed', (t) => {
  const p = plan({
    remote: { '/a.git': entry(2, { head: 'ref: refs/heads/dev' }) },
    onDisk: ['/a.git'],
    repos: { '/a.git': current(1) },
  });
  t.like(action(p.actions, '/a.git'), { kind: 'update', metadata: ['head'] });
});

// ---------------------------------------------------------------- include / exclude

test('include selects by glob and exclude wins over include', (t) => {
  const p = plan({
    remote: { '/pub/linux.git': entry(1), '/pub/linux-2.4.git': entry(2), '/private/x.git': entry(3) },
    config: { include: ['/pub/*'], exclude: ['*/linux-2.4*'] },
  });
  t.deepEqual(kinds(p.actions), { '/pub/linux.git': 'clone' });
  t.deepEqual(p.filtered, [
    { path: '/private/x.git', reason: 'matches no include glob' },
    { path: '/pub/linux-2.4.git', reason: 'matches exclude glob "*/linux-2.4*"' },
  ]);
  t.is(p.summary.filtered, 2);
});

test('excluded repositories on disk are never touched: not updated, not purged', (t) => {
  const p = plan({
    remote: { '/keep.git': entry(1), '/excluded.git': entry(9) },
    onDisk: ['/keep.git', '/excluded.git', '/excluded-gone.git'],
    repos: { '/keep.git': current(1), '/excluded.git': current(1) },
    config: { exclude: ['/excluded*'] },
    options: { purge: true, forcePurge: true },
  });
  t.deepEqual(kinds(p.actions), { '/keep.git': 'skip' });
});

test('a repository outside every include glob is not purged either', (t) => {
  const p = plan({
    remote: { '/pub/a.git': entry(1) },
    onDisk: ['/pub/a.git', '/local/b.git'],
    repos: { '/pub/a.git': current(1) },
    config: { include: ['/pub/*'] },
    options: { purge: true, forcePurge: true },
  });
  t.deepEqual(kinds(p.actions), { '/pub/a.git': 'skip' });
});

test('an empty include selects nothing', (t) => {
  const p = plan({ remote: { '/a.git': entry(1) }, config: { include: [] } });
  t.deepEqual(p.actions, []);
  t.deepEqual(p.filtered, [{ path: '/a.git', reason: 'include is empty' }]);
});

// ---------------------------------------------------------------- purge

test('with purge on, a repository gone from the manifest is purged', (t) => {
  const c = collection(40);
  const p = plan({ ...c, onDisk: [...c.onDisk, '/gone.git'], options: { purge: true } });
  t.like(action(p.actions, '/gone.git'), { kind: 'purge' });
  t.is(p.summary.purge, 1);
  t.is(p.purgeBlocked, undefined);
});

test('with purge off, nothing is purged and the candidates are reported as stale', (t) => {
  const c = collection(40);
  const p = plan({ ...c, onDisk: [...c.onDisk, '/gone.git'] });
  t.is(p.summary.purge, 0);
  t.false(p.actions.some((a) => a.path === '/gone.git'));
  t.deepEqual(p.stale, ['/gone.git']);
});

test('a path the manifest lists as a symlink of a kept repository is never purged', (t) => {
  const c = collection(40);
  c.remote['/r/000.git'] = entry(1, { symlinks: ['/legacy/000.git'] });
  c.repos['/r/000.git'] = current(1, { symlinks: ['/legacy/000.git'] });
  const p = plan({ ...c, onDisk: [...c.onDisk, '/legacy/000.git'], options: { purge: true } });
  t.is(p.summary.purge, 0);
});

test('nopurge globs are never purged; ffonly ones neither, and that is reported', (t) => {
  const c = collection(100);
  const p = plan({
    ...c,
    onDisk: [...c.onDisk, '/gitolite-admin.git', '/ff/locked.git'],
    config: { nopurge: ['/gitolite-admin.git'], ffonly: ['/ff/*'] },
    options: { purge: true },
  });
  t.is(p.summary.purge, 0);
  t.deepEqual(
    p.problems.map((x) => x.path),
    ['/ff/locked.git'],
  );
  t.regex(p.problems[0]!.problem, /ffonly/);
});

test('a repository that a kept repository borrows objects from is kept and reported', (t) => {
  const c = collection(100);
  const p = plan({
    ...c,
    onDisk: [...c.onDisk, '/base.git'],
    alternates: { '/r/001.git': ['/base.git'] },
    options: { purge: true },
  });
  t.false(p.actions.some((a) => a.path === '/base.git'));
  t.deepEqual(p.problems, [
    { path: '/base.git', problem: 'not in the manifest, but kept: /r/001.git borrows objects from it (alternates)' },
  ]);
});

test('alternates protection follows chains, and does not protect a lender whose borrowers are all purged', (t) => {
  const c = collection(100);
  const p = plan({
    ...c,
    onDisk: [...c.onDisk, '/mid.git', '/root.git', '/lonely-lender.git', '/lonely-borrower.git'],
    alternates: {
      '/r/002.git': ['/mid.git'], // kept -> mid kept -> root kept
      '/mid.git': ['/root.git'],
      '/lonely-borrower.git': ['/lonely-lender.git'], // both gone from the manifest
    },
    options: { purge: true, forcePurge: true },
  });
  t.deepEqual(
    p.actions.filter((a) => a.kind === 'purge').map((a) => a.path),
    ['/lonely-borrower.git', '/lonely-lender.git'],
  );
  t.deepEqual(
    p.problems.map((x) => x.path),
    ['/mid.git', '/root.git'],
  );
});

test('purgeprotect: purging that percentage of the local repositories or more is refused, with a message about --force-purge', (t) => {
  const c = collection(19); // 19 kept + 1 gone = 20 on disk; 1/20 = 5%
  const p = plan({ ...c, onDisk: [...c.onDisk, '/gone.git'], options: { purge: true } });
  t.is(p.summary.purge, 0);
  t.truthy(p.purgeBlocked);
  t.like(p.purgeBlocked, { count: 1, total: 20, percent: 5, limit: 5, paths: ['/gone.git'] });
  t.regex(p.purgeBlocked!.message, /--force-purge/);
  t.regex(p.purgeBlocked!.message, /purgeprotect/);
});

test('purgeprotect: below the limit the purge goes ahead', (t) => {
  const c = collection(20); // 1/21 = 4%
  const p = plan({ ...c, onDisk: [...c.onDisk, '/gone.git'], options: { purge: true } });
  t.is(p.summary.purge, 1);
  t.is(p.purgeBlocked, undefined);
});

test('a manifest that shrank to almost nothing purges nothing unless --force-purge', (t) => {
  const c = collection(50);
  const remote = { '/r/000.git': c.remote['/r/000.git']! };
  const blocked = plan({ ...c, remote, options: { purge: true } });
  t.is(blocked.summary.purge, 0);
  t.is(blocked.purgeBlocked?.count, 49);
  t.is(blocked.purgeBlocked?.percent, 98);
  const forced = plan({ ...c, remote, options: { purge: true, forcePurge: true } });
  t.is(forced.summary.purge, 49);
  t.is(forced.purgeBlocked, undefined);
});

test('purgeprotect 100 allows anything short of purging every repository', (t) => {
  const c = collection(3);
  const p = plan({
    ...c,
    remote: { '/r/000.git': c.remote['/r/000.git']! },
    config: { purgeprotect: 100 },
    options: { purge: true },
  });
  t.is(p.summary.purge, 2);
});

// ---------------------------------------------------------------- shape of the plan

test('actions are sorted by path whatever the input order, one per repository, with a summary', (t) => {
  const remote: Manifest = { '/z.git': entry(1), '/a.git': entry(2), '/m/b.git': entry(3), '/m.git': entry(4) };
  const p = plan({ remote, onDisk: ['/a.git', '/m.git'], repos: { '/a.git': current(2), '/m.git': current(5) } });
  t.deepEqual(
    p.actions.map((a) => a.path),
    ['/a.git', '/m.git', '/m/b.git', '/z.git'],
  );
  t.deepEqual(p.summary, { clone: 2, update: 1, metadata: 0, purge: 0, skip: 1, filtered: 0, problems: 0, total: 4 });
});

test('state of repositories neither on disk nor in the manifest is offered for forgetting', (t) => {
  const p = plan({
    remote: { '/a.git': entry(1), '/failed-clone.git': entry(2) },
    onDisk: ['/a.git'],
    repos: {
      '/a.git': current(1),
      '/failed-clone.git': { fingerprint: null, failures: 2 },
      '/purged-long-ago.git': current(3),
    },
  });
  t.deepEqual(p.forget, ['/purged-long-ago.git']);
});

test('the planner does not modify its input', (t) => {
  const c = collection(5);
  const input = {
    ...c,
    onDisk: [...c.onDisk, '/gone.git'],
    alternates: { '/r/001.git': ['/gone.git'] },
    options: { purge: true },
  };
  const before = JSON.stringify(input);
  const deepFreeze = (o: unknown): void => {
    if (o && typeof o === 'object') {
      Object.freeze(o);
      for (const v of Object.values(o)) deepFreeze(v);
    }
  };
  deepFreeze(input);
  t.notThrows(() => plan(input));
  t.is(JSON.stringify(input), before);
});

test('after an edit, an untouched entry is skipped only while its state still says verified at its fingerprint without a failure', (t) => {
  const remote = { '/a.git': entry(1), '/b.git': entry(2), '/c.git': entry(3), '/d.git': entry(4), '/e.git': entry(5) };
  const failedAt = { message: 'boom', code: 'E_HTTP', at: '2026-11-01T00:00:00.000Z' };
  const repos = {
    '/a.git': current(1),
    // recorded since the settled run: a failure, another fingerprint, nothing
    '/b.git': current(2, { lastError: failedAt }),
    '/c.git': current(33),
    // metadata the state leaves out is not looked at for an untouched entry: it was in sync when settled
    '/e.git': { fingerprint: fp(5) },
  };
  const onDisk = ['/a.git', '/b.git', '/c.git', '/d.git', '/e.git'];
  const p = plan({ remote, repos, onDisk, changed: [] });
  t.deepEqual(kinds(p.actions), {
    '/a.git': 'skip',
    '/b.git': 'update',
    '/c.git': 'update',
    '/d.git': 'update',
    '/e.git': 'skip',
  });
  // a changed entry is planned in full; --force updates untouched ones too
  t.is(action(plan({ remote, repos, onDisk, changed: ['/e.git'] }).actions, '/e.git').kind, 'metadata');
  t.is(action(plan({ remote, repos, onDisk, changed: [], options: { force: true } }).actions, '/a.git').kind, 'update');
});
