/**
 * Shared object stores for forkgroups, as grokmirror's objstore does it:
 * one bare repository per forkgroup under `[core] objstore`, whose objects
 * every member reads through `objects/info/alternates`. Bundles of a member
 * are unbundled into the store, so history the members share lands once.
 * The store keeps each member's refs under `refs/virtual/<member id>/`
 * so that nothing a member needs can ever be pruned from it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BundlemirrorError } from '../../errors.js';
import { writeFileAtomic } from '../../fs/atomic.js';
import {
  existingObjects,
  fingerprint,
  initBare,
  isConnected,
  parseShowRef,
  updateRefs,
  refUpdatesTo,
} from '../../git/repo.js';
import { isBareRepository } from '../../git/discovery.js';

const FORKGROUP = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** The store directory of a forkgroup, or null when the id is not safe to use as a name. */
export function storeDir(objstore: string, forkgroup: string): string | null {
  return FORKGROUP.test(forkgroup) && !forkgroup.endsWith('.lock') ? join(objstore, `${forkgroup}.git`) : null;
}

export function memberId(path: string): string {
  return createHash('sha1').update(path).digest('hex').slice(0, 16);
}

const creating = new Map<string, Promise<void>>();

/** Creates the store if needed (once, however many members ask at the same time). */
export function ensureStore(store: string): Promise<void> {
  let pending = creating.get(store);
  if (!pending) {
    pending = createStore(store).finally(() => creating.delete(store));
    creating.set(store, pending);
  }
  return pending;
}

/** Built beside its final name and renamed, so a store is never half made. */
async function createStore(store: string): Promise<void> {
  if (await isBareRepository(store)) return;
  await mkdir(dirname(store), { recursive: true });
  const tmp = `${store}.tmp-${randomBytes(4).toString('hex')}`;
  await initBare(tmp);
  // a store is only ever read through alternates and written by us: no automatic gc
  await writeFileAtomic(join(tmp, 'config'), (await readFile(join(tmp, 'config'), 'utf8')) + '[gc]\n\tauto = 0\n');
  await rm(store, { recursive: true, force: true });
  await rename(tmp, store);
}

export async function linkToStore(repoDir: string, store: string): Promise<void> {
  await writeFileAtomic(join(repoDir, 'objects', 'info', 'alternates'), join(store, 'objects') + '\n');
}

export async function usesStore(repoDir: string, store: string): Promise<boolean> {
  try {
    const text = await readFile(join(repoDir, 'objects', 'info', 'alternates'), 'utf8');
    return text.split('\n').some((l) => l.trim() === join(store, 'objects'));
  } catch {
    return false;
  }
}

/**
 * Mirrors a member's refs under `refs/virtual/<id>/` in the store, for the
 * objects the store holds (what a member fetched itself stays its own).
 */
export async function syncVirtualRefs(store: string, member: string, refs: Record<string, string>): Promise<void> {
  const prefix = `refs/virtual/${memberId(member)}/`;
  const present = await existingObjects(store, [...new Set(Object.values(refs))], member);
  // Present is not enough: a tag-only bundle (git bundles a new tag on an already published commit
  // as just the tag object, with no prerequisite) can put a tag in the store whose commit the member
  // fetched into its own objects. A ref to it breaks the store (fsck: broken link), and every later
  // unbundle into it dies with "bad object" (test/reliability/regressions.test.ts): record only refs
  // whose whole history is in the store.
  const have = await connectedIn(store, [...present], member);
  const current = parseShowRef((await fingerprint(store, member)).raw).filter((r) => r.name.startsWith(prefix));
  const want = new Map(
    Object.entries(refs)
      .filter(([, oid]) => have.has(oid))
      .map(([name, oid]) => [prefix + name.slice('refs/'.length), oid]),
  );
  await updateRefs(store, refUpdatesTo(current, want), member);
}

/** The tips among `oids` whose history is complete in `store` (one git call when all are, the usual case). */
async function connectedIn(store: string, oids: string[], member: string): Promise<Set<string>> {
  if (await isConnected(store, oids, member)) return new Set(oids);
  const whole = new Set<string>();
  for (const oid of oids) if (await isConnected(store, [oid], member)) whole.add(oid);
  return whole;
}

/** Store paths with a drop in progress: purges run in parallel, and two members of one store must not both decide to remove it. */
const dropping = new Map<string, Promise<unknown>>();

/** Forgets a purged member; removes the store when it was the last one. Returns whether the store went. */
export function dropMember(store: string, member: string): Promise<boolean> {
  const before = dropping.get(store) ?? Promise.resolve();
  const run = before.then(
    () => dropMemberNow(store, member),
    () => dropMemberNow(store, member),
  );
  const settled = run.catch(() => undefined);
  dropping.set(store, settled);
  void settled.then(() => {
    if (dropping.get(store) === settled) dropping.delete(store);
  });
  return run;
}

async function dropMemberNow(store: string, member: string): Promise<boolean> {
  if (!(await isBareRepository(store))) return false;
  await syncVirtualRefs(store, member, {});
  const left = parseShowRef((await fingerprint(store, member)).raw);
  if (left.length > 0) return false;
  await rm(store, { recursive: true, force: true });
  return true;
}

export function unsafeForkgroup(repo: string, forkgroup: string): BundlemirrorError {
  return new BundlemirrorError(
    'E_UNSAFE_NAME',
    `forkgroup ${JSON.stringify(forkgroup)} is not a safe name; mirroring without a shared store`,
    { repo },
  );
}
