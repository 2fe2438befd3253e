import test from 'ava';
import { parseKitName } from '../src/kit/kit-format.js';
import { lockPathProblem } from '../src/lfs/locks.js';
import { parsePointer } from '../src/lfs/pointer.js';
import { parseWriters } from '../src/lfs/writers.js';

const OID = '4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393';

test('pointer files: only the spec shape is a pointer', (t) => {
  const pointer = `version https://git-lfs.github.com/spec/v1\noid sha256:${OID}\nsize 12345\n`;
  t.deepEqual(parsePointer(pointer), { oid: OID, size: 12345 });
  t.is(parsePointer(pointer.replace('size 12345', 'size -1')), null);
  t.is(parsePointer(pointer.replace(OID, OID.toUpperCase())), null);
  t.is(parsePointer(pointer.replace(OID, '../../etc/passwd')), null);
  t.is(parsePointer(pointer.slice(0, -1)), null, 'no final newline');
  t.is(parsePointer(`oid sha256:${OID}\nversion https://git-lfs.github.com/spec/v1\nsize 1\n`), null, 'version first');
  t.is(parsePointer(`version https://git-lfs.github.com/spec/v1\nsize 1\noid sha256:${OID}\n`), null, 'keys sorted');
  t.is(parsePointer('just a text file that mentions git-lfs\n'), null);
});

test('lock paths stay inside the repository', (t) => {
  t.is(lockPathProblem('art/scene.psd'), null);
  for (const bad of ['', '../x', 'a/../b', './a', '/abs', 'a//b', 'a\\b', 'a\nb', 'x'.repeat(5000), 7])
    t.not(lockPathProblem(bad), null, String(bad));
});

test('kit names: LFS objects only at their content-addressed place under a repository', (t) => {
  t.deepEqual(parseKitName(`pub/a.git/lfs/objects/4d/7a/${OID}`), { kind: 'lfs', repo: '/pub/a.git', oid: OID });
  t.true('problem' in parseKitName(`pub/a.git/lfs/objects/00/7a/${OID}`), 'wrong fan-out directory');
  t.true('problem' in parseKitName(`lfs/objects/4d/7a/${OID}`), 'no repository');
  t.true('problem' in parseKitName(`pub/../lfs/objects/4d/7a/${OID}`));
  t.true('problem' in parseKitName(`pub/a.git/lfs/objects/4d/7a/${OID}.tmp`));
});

test('writers file: name token lines, comments, and clear refusals', (t) => {
  const w = parseWriters('# comment\n\nalice  secret-token-1\nbob secret-token-2\n', 'writers');
  t.deepEqual([...w.keys()], ['alice', 'bob']);
  for (const bad of [
    'alice',
    'alice short',
    'alice a b c',
    '-x secret-token-1',
    'alice secret-token-1\nalice secret-token-2',
  ]) {
    const err = t.throws(() => parseWriters(bad, 'writers')) as { code?: string };
    t.is(err.code, 'E_CONFIG', bad);
  }
});
