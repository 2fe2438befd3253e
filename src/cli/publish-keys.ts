/**
 * The `[publish]` keys of `publish -c FILE`, written out for the hook's
 * command line, which is read without building the commander program that
 * publish-settings.ts derives them from. test/publish-argv.test.ts checks
 * that this list is the derived one, so a flag added to the command without
 * its line here fails the test run rather than the hook.
 */
import type { PublishKey } from '../origin/publish-config.js';

type Kind = PublishKey['kind'];
type Sort = 'path' | 'url' | 'number' | '';

const KEYS: readonly [attr: string, flag: string, kind: Kind, sort: Sort][] = [
  ['toplevel', '--toplevel', 'value', 'path'],
  ['bundles', '--bundles', 'value', 'path'],
  ['baseUrl', '--base-url', 'value', 'url'],
  ['ignore', '--ignore', 'list', ''],
  ['wait', '--wait', 'value', 'number'],
  ['maxIncrementals', '--max-incrementals', 'value', 'number'],
  ['chainRatio', '--chain-ratio', 'value', 'number'],
  ['graceDays', '--grace-days', 'value', 'number'],
  ['slices', '--slices', 'value', 'number'],
  ['sliceMinMib', '--slice-min-mib', 'value', 'number'],
  ['parts', '--parts', 'value', 'number'],
  ['partsMinMib', '--parts-min-mib', 'value', 'number'],
  ['signKey', '--sign-key', 'value', 'path'],
  ['quiet', '--quiet', 'switch', ''],
  ['notify', '--notify', 'list', 'url'],
  ['notifyTokenFile', '--notify-token-file', 'value', 'path'],
  ['state', '--state', 'value', 'path'],
  ['s3PathStyle', '--s3-path-style', 'switch', ''],
  ['s3PartSize', '--s3-part-size', 'value', 'number'],
];

export const PUBLISH_KEYS: readonly PublishKey[] = KEYS.map(([attr, flag, kind, sort]) => ({
  key: attr.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`),
  attr,
  flag,
  kind,
  path: sort === 'path',
  url: sort === 'url',
  number: sort === 'number',
}));
