import test from 'ava';
import { groupForks, forkgroupId } from '../src/origin/forkgroups.js';

const root = (n: number) => n.toString(16).padStart(40, 'a');

test('repositories sharing a root commit form one group whose parent is the shortest path', (t) => {
  const groups = groupForks([
    { path: '/pub/linux.git', roots: [root(1)], alternates: [], previous: null },
    { path: '/pub/forks/linux-stable.git', roots: [root(1)], alternates: [], previous: null },
    { path: '/pub/arm-soc.git', roots: [root(1), root(2)], alternates: [], previous: null },
    { path: '/pub/other.git', roots: [root(3)], alternates: [], previous: null },
  ]);
  const g = groups.get('/pub/linux.git')!;
  t.deepEqual(g.members, ['/pub/arm-soc.git', '/pub/forks/linux-stable.git', '/pub/linux.git']);
  t.is(g.parent, '/pub/linux.git');
  t.is(groups.get('/pub/arm-soc.git'), g);
  t.false(groups.has('/pub/other.git'), 'a repository alone is in no group');
  t.regex(g.id, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}$/);
  t.is(g.id, forkgroupId(root(1)), 'stable across runs');
});

test('alternates link repositories and make the borrowed-from repository the parent', (t) => {
  const groups = groupForks([
    { path: '/a/zzz-long-name-base.git', roots: [root(5)], alternates: [], previous: null },
    { path: '/a/b.git', roots: [root(6)], alternates: ['/a/zzz-long-name-base.git'], previous: null },
  ]);
  t.is(groups.get('/a/b.git')!.parent, '/a/zzz-long-name-base.git');
});

test('a forkgroup id already published is kept', (t) => {
  const groups = groupForks([
    { path: '/x.git', roots: [root(1)], alternates: [], previous: '3028fd40-6c5f-433e-9295-6bf61b673aee' },
    { path: '/y.git', roots: [root(1)], alternates: [], previous: null },
  ]);
  t.is(groups.get('/y.git')!.id, '3028fd40-6c5f-433e-9295-6bf61b673aee');
});
