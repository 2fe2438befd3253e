/**
 * The LFS pointers reachable from a set of tips, found without checking
 * anything out: `rev-list --objects` with a blob size filter lists only
 * blobs small enough to be pointers, `cat-file --batch-check` keeps those
 * of a pointer's size, and `cat-file --batch` reads them. With `exclude`
 * set to the tips of the last publish, only the new history is walked.
 */
import { parsePointer, MAX_POINTER_SIZE, type LfsPointer } from '../lfs/pointer.js';
import { git } from './exec.js';
import { isObjectId } from './refname.js';

/** The version line and oid alone are longer than this: smaller blobs are never pointers. */
const MIN_POINTER_SIZE = 100;

export async function lfsPointersReachable(
  gitDir: string,
  tips: string[],
  exclude: string[],
  repo?: string,
): Promise<LfsPointer[]> {
  if (tips.length === 0) return [];
  const ids = [...tips, ...exclude];
  if (!ids.every(isObjectId)) throw new TypeError('lfsPointersReachable: object ids only');
  const input = [...tips, ...exclude.map((e) => `^${e}`)].join('\n') + '\n';
  const listed = await git(
    ['rev-list', '--objects', '--no-object-names', `--filter=blob:limit=${MAX_POINTER_SIZE - 1}`, '--stdin'],
    { gitDir, repo, input },
  );
  const objects = [...new Set(listed.stdout.toString('utf8').split('\n').filter(isObjectId))];
  if (objects.length === 0) return [];

  const checked = await git(['cat-file', '--batch-check=%(objectname) %(objecttype) %(objectsize)'], {
    gitDir,
    repo,
    input: objects.join('\n') + '\n',
  });
  const candidates: string[] = [];
  for (const line of checked.stdout.toString('utf8').split('\n')) {
    const [oid, type, size] = line.split(' ');
    if (type === 'blob' && oid && Number(size) >= MIN_POINTER_SIZE && Number(size) < MAX_POINTER_SIZE)
      candidates.push(oid);
  }
  if (candidates.length === 0) return [];

  const read = await git(['cat-file', '--batch'], { gitDir, repo, input: candidates.join('\n') + '\n' });
  const out = read.stdout;
  const found = new Map<string, LfsPointer>();
  let at = 0;
  while (at < out.length) {
    const eol = out.indexOf(0x0a, at);
    if (eol < 0) break;
    const header = out.subarray(at, eol).toString('utf8').split(' ');
    const size = Number(header[2]);
    if (header[1] === 'missing' || !Number.isSafeInteger(size)) {
      at = eol + 1;
      continue;
    }
    const pointer = parsePointer(out.subarray(eol + 1, eol + 1 + size));
    if (pointer) found.set(pointer.oid, pointer);
    at = eol + 1 + size + 1;
  }
  return [...found.values()].sort((a, b) => (a.oid < b.oid ? -1 : 1));
}
