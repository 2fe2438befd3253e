/**
 * Writes one content-addressed bundle. git streams the bundle to us; we hash
 * the bytes as they go to a temp file, so a bundle is read once, then give
 * it its final name `<sha256>.bundle` with an atomic rename. A name never
 * refers to other bytes, which is what makes resuming a download safe.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, open, rm, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { join } from 'node:path';
import { hashingTee } from '../fs/hashing-tee.js';
import { createBundle, readBundleHeader, type BundleHeader } from '../git/bundle.js';
import { commitFile, exists, tempPathFor } from '../fs/atomic.js';

export interface WrittenBundle {
  file: string;
  name: string;
  sha256: string;
  size: number;
  header: BundleHeader;
}

/**
 * `revs` is `'all'` for a base bundle, or stdin lines for `git bundle create
 * --stdin` (ref names to include, `^oid` for prerequisites). Returns null when
 * git finds nothing new to bundle.
 */
export async function writeBundle(
  gitDir: string,
  outDir: string,
  revs: 'all' | string[],
  repo: string,
  /** Extra environment for git (a forkgroup member reading its parent's objects). */
  env?: Record<string, string>,
): Promise<WrittenBundle | null> {
  await mkdir(outDir, { recursive: true });
  const target = join(outDir, 'bundle');
  const tmp = tempPathFor(target);
  const { stream: tee, result } = hashingTee();
  const sink = createWriteStream(tmp, { flags: 'w', mode: 0o644, highWaterMark: 1 << 20 });
  // pipeline, not pipe: a failing write (disk full) must tear the chain down to git's stdout, or git blocks forever
  const closed = pipeline(tee, sink);
  closed.catch(() => {}); // observed below; avoids an unhandled rejection while git still runs
  let made: boolean;
  try {
    made = await createBundle(gitDir, revs, tee, { repo, env });
    if (made) await closed;
  } catch (err) {
    // the write's own error (ENOSPC) says more than git's broken pipe
    const writeError = await closed.then(
      () => null,
      (e: unknown) => e,
    );
    sink.destroy();
    await rm(tmp, { force: true });
    if ((writeError as NodeJS.ErrnoException | null)?.syscall) throw writeError;
    throw err;
  }
  if (!made) {
    await closed.then(
      () => null,
      () => null,
    );
    sink.destroy();
    await rm(tmp, { force: true });
    return null;
  }
  const { sha256, size } = result();
  return commitBundleFile(tmp, outDir, sha256, size);
}

/** Syncs a bundle written to `tmp` and gives it its content-addressed name in `outDir`. */
export async function commitBundleFile(
  tmp: string,
  outDir: string,
  sha256: string,
  size: number,
): Promise<WrittenBundle> {
  const fh = await open(tmp, 'r');
  await fh.sync();
  await fh.close();
  const name = `${sha256}.bundle`;
  const file = join(outDir, name);
  if (await exists(file)) {
    // identical bytes already published under this name: keep the old file untouched
    await rm(tmp, { force: true });
  } else {
    await commitFile(tmp, file);
  }
  const header = await readBundleHeader(file);
  const st = await stat(file);
  return { file, name, sha256, size: st.size === size ? size : st.size, header };
}
