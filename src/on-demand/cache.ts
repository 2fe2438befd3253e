/**
 * The on-demand cache on disk. `DIR` is a toplevel of bare mirrors laid out
 * by upstream host and path (`DIR/github.com/torvalds/linux.git`), so any
 * bundlemirror tool reads it like an origin's toplevel. Our own state lives
 * in `DIR/.bundlemirror/` (a dot directory: never a repository path):
 *
 *   published/      the published tree (manifest, index.json, bundle-list, bundles)
 *   tmp/            clones in progress; moved into place only when complete
 *   on-demand.json  per mirror: its upstream URL, last request, last fetch
 *
 * Eviction is least recently requested first, and only of mirrors no job
 * is working on.
 */
import { mkdir, readdir, readFile, lstat, rm } from 'node:fs/promises';
import { join } from 'node:path';
import * as z from 'zod';
import { writeFileAtomic } from '../fs/atomic.js';
import { diskPathOf } from '../manifest/tree.js';

export interface CacheLayout {
  dir: string;
  published: string;
  tmp: string;
  stateFile: string;
}

export function cacheLayout(dir: string): CacheLayout {
  const own = join(dir, '.bundlemirror');
  return { dir, published: join(own, 'published'), tmp: join(own, 'tmp'), stateFile: join(own, 'on-demand.json') };
}

/** `/host/a/b.git` under a root directory. */
export function underRoot(root: string, repoPath: string): string {
  return diskPathOf(root, repoPath);
}

const MirrorRecordSchema = z.object({
  url: z.string(),
  requestedAt: z.number(),
  fetchedAt: z.number(),
});
export type MirrorRecord = z.infer<typeof MirrorRecordSchema>;
const StateSchema = z.object({ version: z.literal(1), mirrors: z.record(z.string(), MirrorRecordSchema) });

export async function readCacheState(layout: CacheLayout): Promise<Record<string, MirrorRecord>> {
  try {
    return StateSchema.parse(JSON.parse(await readFile(layout.stateFile, 'utf8'))).mirrors;
  } catch {
    return {}; // first start, or unreadable: mirrors are fetched again when asked for
  }
}

export async function writeCacheState(layout: CacheLayout, mirrors: Record<string, MirrorRecord>): Promise<void> {
  await mkdir(join(layout.dir, '.bundlemirror'), { recursive: true });
  await writeFileAtomic(layout.stateFile, JSON.stringify({ version: 1, mirrors }, null, 1) + '\n');
}

/** Bytes used by the files under `path` (symlinks are not followed). */
export async function diskUsage(path: string): Promise<number> {
  let st;
  try {
    st = await lstat(path);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return st.size;
  let total = 0;
  const entries = await readdir(path).catch(() => [] as string[]);
  for (const e of entries) total += await diskUsage(join(path, e));
  return total;
}

export interface CacheEntry {
  path: string;
  bytes: number;
  requestedAt: number;
  busy: boolean;
}

/** Which mirrors to evict so the total fits in `limit`: least recently requested first, never a busy one. */
export function chooseEvictions(entries: CacheEntry[], limit: number): string[] {
  let total = entries.reduce((s, e) => s + e.bytes, 0);
  const out: string[] = [];
  for (const e of [...entries].filter((x) => !x.busy).sort((a, b) => a.requestedAt - b.requestedAt)) {
    if (total <= limit) break;
    out.push(e.path);
    total -= e.bytes;
  }
  return out;
}

export async function removeTree(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true, maxRetries: 3 });
}
