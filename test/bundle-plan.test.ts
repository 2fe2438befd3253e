import test from 'ava';
import { planBundles } from '../src/replica/plan/bundle-plan.js';
import type { BundleRef, RepoIndex } from '../src/manifest/repo-index.js';

const oid = (n: number) => n.toString(16).padStart(40, '0');

function bundle(token: number, size: number, prereqs: number[], tips: number[], superseded = false): BundleRef {
  return {
    uri: `${token.toString(16).padStart(64, '0')}.bundle`,
    sha256: token.toString(16).padStart(64, '0'),
    size,
    creationToken: token,
    prerequisites: prereqs.map(oid),
    tips: Object.fromEntries(tips.map((t, i) => [`refs/heads/b${i}`, oid(t)])),
    ...(superseded ? { superseded: '2026-01-01T00:00:00.000Z' } : {}),
  };
}

function index(bundles: BundleRef[], head: number): RepoIndex {
  return {
    version: 1,
    path: '/a.git',
    generated: '2026-01-01T00:00:00.000Z',
    fingerprint: oid(999),
    head: 'ref: refs/heads/b0',
    refs: { 'refs/heads/b0': oid(head) },
    bundles,
  };
}

// history: 1 (base) -> 2 -> 3 -> 4 (bridge, collapse) ; new base at 4 -> 5
const chain = [
  bundle(1, 1000, [], [1], true),
  bundle(2, 10, [1], [2], true),
  bundle(3, 10, [2], [3], true),
  bundle(4, 10, [3], [4], true),
  bundle(5, 1000, [], [4]),
  bundle(6, 10, [4], [5]),
];

test('a fresh replica takes the live base and the incrementals after it', (t) => {
  const plan = planBundles({ index: index(chain, 5), present: new Set(), exists: false });
  t.is(plan.kind, 'bundles');
  if (plan.kind === 'bundles')
    t.deepEqual(
      plan.bundles.map((b) => b.creationToken),
      [5, 6],
    );
});

test('a replica part-way along a collapsed chain catches up with incrementals, not the new base', (t) => {
  const plan = planBundles({ index: index(chain, 5), present: new Set([oid(1), oid(2)]), exists: true });
  t.is(plan.kind, 'bundles');
  if (plan.kind === 'bundles') {
    t.deepEqual(
      plan.bundles.map((b) => b.creationToken),
      [3, 4, 6],
    );
    t.is(plan.bytes, 30);
  }
});

test('a replica one step behind downloads only the newest incremental', (t) => {
  const plan = planBundles({
    index: index(chain, 5),
    present: new Set([oid(1), oid(2), oid(3), oid(4)]),
    exists: true,
  });
  t.is(plan.kind, 'bundles');
  if (plan.kind === 'bundles')
    t.deepEqual(
      plan.bundles.map((b) => b.creationToken),
      [6],
    );
});

test('nothing to download when every ref is present', (t) => {
  t.is(planBundles({ index: index(chain, 5), present: new Set([oid(5)]), exists: true }).kind, 'none');
});

test('an existing replica off every chain (force-push history) falls back to git fetch instead of a full base', (t) => {
  const plan = planBundles({ index: index(chain, 5), present: new Set([oid(77)]), exists: true });
  t.is(plan.kind, 'fetch');
});

test('an index without bundles (a plain grokmirror origin) means git fetch', (t) => {
  t.is(planBundles({ index: index([], 5), present: new Set(), exists: false }).kind, 'fetch');
});

test('a fresh replica prefers the cheaper complete path', (t) => {
  // an old base plus a cheap chain can beat a large new base
  const cheap = [bundle(1, 100, [], [1], true), bundle(2, 10, [1], [2], true), bundle(3, 500, [], [2])];
  const plan = planBundles({ index: index(cheap, 2), present: new Set(), exists: false });
  t.is(plan.kind, 'bundles');
  if (plan.kind === 'bundles')
    t.deepEqual(
      plan.bundles.map((b) => b.creationToken),
      [1, 2],
    );
});

test('a bundle URI from an index may reach a parent directory inside the tree, never above it or to another host', async (t) => {
  const { bundleUrl } = await import('../src/manifest/tree.js');
  const index = 'http://origin.example/mirror/pub/forks/b.git/index.json';
  const root = 'http://origin.example/mirror/';
  const b = (uri: string) => ({ ...bundle(1, 1, [], [1]), uri });
  t.is(
    bundleUrl(index, b('../../a.git/x.bundle'), '/pub/forks/b.git', root),
    'http://origin.example/mirror/pub/a.git/x.bundle',
  );
  t.throws(() => bundleUrl(index, b('../../../../etc/x.bundle'), '/pub/forks/b.git', root), {
    message: /outside the published tree/,
  });
  t.throws(() => bundleUrl(index, b('http://elsewhere.example/x.bundle'), '/pub/forks/b.git', root), {
    message: /outside the published tree/,
  });
});
