/**
 * Reads what the manifest says about one repository. The cheap parts (HEAD,
 * description) are plain file reads; git runs only for the fingerprint and,
 * when the repository changed, for its timestamp and owner. The files are
 * a few bytes and read synchronously: a publish reads them for every
 * repository of the collection, and the promise API's thread-pool round
 * trip costs ten times the read (src/git/refs-signature.ts).
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { configGet, gitText } from './repo.js';
import { isObjectId } from './refname.js';

/** The text `git init` puts in `description`; grokmirror leaves it out of the manifest. */
const DEFAULT_DESCRIPTION = /^Unnamed repository; edit this file 'description' to name the repository\.\s*$/;

export async function readHeadFile(dir: string): Promise<string | null> {
  try {
    const text = readFileSync(join(dir, 'HEAD'), 'utf8').trim();
    if (text.startsWith('ref: ')) return text;
    return isObjectId(text) ? text : null;
  } catch {
    return null;
  }
}

export async function readDescription(dir: string): Promise<string | null> {
  try {
    const text = readFileSync(join(dir, 'description'), 'utf8').trim();
    return text === '' || DEFAULT_DESCRIPTION.test(text) ? null : text;
  } catch {
    return null;
  }
}

export async function readOwner(dir: string, repo: string): Promise<string | null> {
  return configGet(dir, 'gitweb.owner', repo);
}

/** Directories listed in objects/info/alternates, resolved to absolute paths of their repositories. */
export async function readAlternates(dir: string): Promise<string[]> {
  let text: string;
  try {
    text = readFileSync(join(dir, 'objects', 'info', 'alternates'), 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => resolve(join(dir, 'objects'), l).replace(/\/objects\/?$/, ''));
}

/** Newest committer or tagger date among the refs, in seconds (grokmirror's `modified`). */
export async function lastModified(dir: string, repo: string): Promise<number> {
  const out = await gitText(['for-each-ref', '--count=1', '--sort=-creatordate', '--format=%(creatordate:unix)'], {
    gitDir: dir,
    repo,
  });
  const n = Number.parseInt(out, 10);
  return Number.isFinite(n) && n > 0 ? n : Math.floor(Date.now() / 1000);
}
