import test from 'ava';
import { DEFAULT_CHAIN_POLICY, shouldCollapse } from '../src/origin/chain.js';
import type { BundleRef } from '../src/manifest/repo-index.js';

const bundle = (size: number, token: number, slice?: number): BundleRef => ({
  uri: `${String(token).padStart(64, '0')}.bundle`,
  sha256: String(token).padStart(64, '0'),
  size,
  creationToken: token,
  prerequisites: token === 1 ? [] : ['a'.repeat(40)],
  tips: {},
  ...(slice ? { slice } : {}),
});

test('the slices of a sliced base count as the base, not as incrementals, when a publish decides to collapse', (t) => {
  const sliced = [bundle(100, 1), bundle(100, 2, 1), bundle(100, 3, 2)];
  // 40 bytes on a 300-byte base: far under the 0.5 ratio, one incremental
  t.false(shouldCollapse(sliced, 40, DEFAULT_CHAIN_POLICY));
  // the same bundles without the marks: two 100-byte incrementals on a 100-byte base
  const unmarked = sliced.map(({ slice: _slice, ...b }) => b);
  t.true(shouldCollapse(unmarked, 40, DEFAULT_CHAIN_POLICY));
  // past the ratio of the whole sliced base, it collapses
  t.true(shouldCollapse(sliced, 151, DEFAULT_CHAIN_POLICY));
});
