/**
 * Paths under a root that a write may use without being led elsewhere.
 *
 * A replica writes where the network tells it to (repository paths and
 * symlinks come from the origin's manifest), so a symlink anywhere on the
 * way could turn one of our writes into a write outside the toplevel, or
 * into a repository's hooks/ or logs/. `realpath` checks after the fact are
 * not enough (a link can point at a place that is still inside the
 * toplevel and be used later to climb out), so each path is walked from
 * the root one component at a time with lstat: a symlinked component is
 * refused, unless the caller vouches for that exact link (the replica's own
 * manifest symlinks, checked against the target it wrote).
 */
import { lstat, mkdir, readlink } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { BundlemirrorError } from '../errors.js';

export interface ConfinedOptions {
  /** The repository the write is for (named in the error). */
  repo?: string | undefined;
  /** What the write is, for the error ("repository", "state file"...). */
  what?: string | undefined;
  /** Create missing directories, the last component included (each one checked as it is made). */
  create?: boolean | undefined;
  /**
   * Symlinks the caller created and verified, by path relative to the root
   * ('/'-separated), with the exact target they must still hold.
   */
  trustedLinks?: ReadonlyMap<string, string> | undefined;
}

/** The parts of a root-relative path; `.`, `..` and empty parts are refused as a programming error. */
function partsOf(rel: string | readonly string[]): string[] {
  const parts = typeof rel === 'string' ? rel.split('/').filter((p) => p !== '') : [...rel];
  for (const p of parts) {
    if (p === '.' || p === '..' || p === '' || p.includes('/') || p.includes(sep))
      throw new TypeError(`confinedPath: bad component ${JSON.stringify(p)}`);
  }
  return parts;
}

/**
 * `root/rel` after checking that no existing component of `rel` is a
 * symlink (other than a trusted one) and that every component before the
 * last is a directory. The root itself is the administrator's: it may be
 * reached through symlinks.
 */
export async function confinedPath(
  root: string,
  rel: string | readonly string[],
  opts: ConfinedOptions = {},
): Promise<string> {
  const parts = partsOf(rel);
  let here = root;
  for (let i = 0; i < parts.length; i += 1) {
    const next = join(here, parts[i]!);
    const last = i === parts.length - 1;
    let st = await lstatOrNull(next);
    if (st === null) {
      if (!opts.create) return join(here, ...parts.slice(i));
      await mkdir(next).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
      st = await lstatOrNull(next);
      if (st === null)
        throw Object.assign(new Error(`${next} vanished while it was being created`), { code: 'ENOENT' });
    }
    if (st.isSymbolicLink()) {
      const relPath = parts.slice(0, i + 1).join('/');
      const expected = opts.trustedLinks?.get(relPath);
      if (expected === undefined || (await readlink(next).catch(() => null)) !== expected)
        throw symlinkRefused(root, next, opts);
    } else if (!last && !st.isDirectory()) {
      throw new BundlemirrorError(
        'E_SYMLINK',
        `${next} is not a directory; refusing to write ${opts.what ?? 'there'} below it`,
        {
          repo: opts.repo,
          hint: `move ${next} out of the way`,
        },
      );
    }
    here = next;
  }
  return here;
}

/** Checks an absolute path that should lie under `root`; a path outside it is the administrator's and is returned as it is. */
export async function confinedAbsolute(root: string, abs: string, opts: ConfinedOptions = {}): Promise<string> {
  const rel = relative(root, abs);
  if (rel === '') return abs;
  if (rel === '..' || rel.startsWith(`..${sep}`) || rel.startsWith(sep)) return abs;
  return confinedPath(root, rel.split(sep), opts);
}

function symlinkRefused(root: string, at: string, opts: ConfinedOptions): BundlemirrorError {
  return new BundlemirrorError(
    'E_SYMLINK',
    `${at} is a symlink the replica did not make; refusing to write ${opts.what ?? 'anything'} through it`,
    {
      repo: opts.repo,
      hint: `remove ${at} (bundlemirror creates and checks the manifest's symlinks itself); nothing under ${root} is written through a symlink`,
    },
  );
}

async function lstatOrNull(p: string) {
  try {
    return await lstat(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    // ENOTDIR: a component before is a file; the write would fail there anyway
    throw err;
  }
}
