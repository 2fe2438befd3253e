/**
 * A fleet of N tiny but real bare repositories, written directly with
 * node:fs (10,000 `git init` + commits would take minutes): each has its own
 * root commit (distinct history, distinct fingerprint, so nothing groups
 * them into one forkgroup), stored as loose objects, `main` in packed-refs.
 * Next to it, optionally, the published tree an earlier `publish` would
 * have left (manifest, index.json, bundle-list and a real bundle per
 * repository) and a replica that holds exactly the same repositories with
 * a state.json saying they are verified. git reads all of it (the poll
 * scenario clones and fetches some of them to prove it). A replica's
 * repositories carry the config `pull` gives a mirror it clones (hooks
 * path, no reflogs, owner), taken from the code that writes it, so the
 * first pull of one costs what it costs in real use.
 */
import { createHash } from 'node:crypto';
import { mkdir, realpath, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import pLimit from 'p-limit';
import { serializeManifest, type Manifest } from '../../src/manifest/manifest.js';
import { serializeRepoIndex, INDEX_VERSION, type RepoIndex } from '../../src/manifest/repo-index.js';
import { renderBundleList } from '../../src/manifest/bundle-list.js';
import { mirrorConfig } from '../../src/git/repo.js';
import { emptyHooksDir } from '../../src/replica/paths.js';
import { wantedMetadata } from '../../src/replica/sync/metadata.js';
import { WHO } from './data.js';

export const EMPTY_TREE = '4b825dc642cb6eb9a060e54bf8d69288fbee4904';

export interface FleetRepo {
  path: string;
  commit: string;
  fingerprint: string;
  description: string;
}

export function fleetPaths(n: number): string[] {
  // nested like a forge: 100 groups
  return Array.from(
    { length: n },
    (_, i) => `/g${String(i % 100).padStart(2, '0')}/r${String(i).padStart(5, '0')}.git`,
  );
}

function object(type: 'commit' | 'tree', body: Buffer): { oid: string; raw: Buffer } {
  const raw = Buffer.concat([Buffer.from(`${type} ${body.length}\0`), body]);
  return { oid: createHash('sha1').update(raw).digest('hex'), raw };
}

function commitFor(path: string): { oid: string; raw: Buffer; body: Buffer } {
  const body = Buffer.from(
    `tree ${EMPTY_TREE}\nauthor ${WHO} 1700000000 +0000\ncommitter ${WHO} 1700000000 +0000\n\nInitial commit of ${path}\n`,
  );
  return { ...object('commit', body), body };
}

/** A version 2 pack of (type, body) objects, as `git bundle` would carry it. */
function pack(objects: { type: 1 | 2; body: Buffer }[]): Buffer {
  const parts: Buffer[] = [Buffer.from('PACK'), u32(2), u32(objects.length)];
  for (const o of objects) {
    let size = o.body.length;
    const head: number[] = [(o.type << 4) | (size & 0x0f)];
    size >>>= 4;
    while (size > 0) {
      head[head.length - 1]! |= 0x80;
      head.push(size & 0x7f);
      size >>>= 7;
    }
    parts.push(Buffer.from(head), deflateSync(o.body));
  }
  const data = Buffer.concat(parts);
  return Buffer.concat([data, createHash('sha1').update(data).digest()]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/**
 * The fewest filesystem operations that make a bare repository git accepts
 * (the empty tree is built into git): creating 30,000 of them is bound by
 * metadata operations, so fewer is faster.
 */
async function writeRepo(dir: string, repo: FleetRepo, commitZ: Buffer, config: string): Promise<void> {
  const objDir = join(dir, 'objects', repo.commit.slice(0, 2));
  await mkdir(objDir, { recursive: true });
  await Promise.all([
    mkdir(join(dir, 'refs')),
    writeFile(join(dir, 'HEAD'), 'ref: refs/heads/main\n'),
    writeFile(join(dir, 'config'), config),
    writeFile(join(dir, 'description'), repo.description + '\n'),
    writeFile(
      join(dir, 'packed-refs'),
      `# pack-refs with: peeled fully-peeled sorted \n${repo.commit} refs/heads/main\n`,
    ),
    writeFile(join(objDir, repo.commit.slice(2)), commitZ),
  ]);
}

/** What `git init --bare` writes. */
const INIT_CONFIG: [string, string][] = [
  ['core.repositoryformatversion', '0'],
  ['core.filemode', 'true'],
  ['core.bare', 'true'],
];

/** `section.name value` pairs as git's config file (no subsections), sections in first-seen order. */
function configFile(entries: [string, string][]): string {
  const sections = new Map<string, string[]>();
  for (const [key, value] of entries) {
    const dot = key.indexOf('.');
    const section = key.slice(0, dot);
    // git's quoting: backslash and double quote escaped; quoted when it would otherwise be misread
    const escaped = value.replace(/[\\"]/g, (c) => `\\${c}`);
    const quoted = /^\s|\s$|[;#]/.test(value) ? `"${escaped}"` : escaped;
    const lines = sections.get(section) ?? [];
    lines.push(`\t${key.slice(dot + 1)} = ${quoted}\n`);
    sections.set(section, lines);
  }
  return [...sections].map(([section, lines]) => `[${section}]\n${lines.join('')}`).join('');
}

export interface FleetOptions {
  n: number;
  origin: string;
  /** Also write the published tree here. */
  out?: string;
  /** Also write a replica here, in sync, with its state.json. */
  replica?: string;
  /** The replica config's `[pull] default_owner`: the owner `pull` gives a repository its manifest entry names none for. */
  replicaOwner?: string | null;
  /** Rewrite only these repositories (restoring a cached fleet); manifest and state are always rewritten whole. */
  only?: ReadonlySet<string>;
}

export async function makeFleet(opts: FleetOptions): Promise<FleetRepo[]> {
  const generated = new Date(Date.now() + 2000).toISOString();
  const manifest: Manifest = {};
  const state: Record<string, unknown> = {};
  const repos = fleetPaths(opts.n).map((path) => {
    const c = commitFor(path);
    return {
      repo: {
        path,
        commit: c.oid,
        fingerprint: createHash('sha1').update(`${c.oid} refs/heads/main\n`).digest('hex'),
        description: `Fleet repository ${path}`,
      },
      c,
    };
  });
  const entryFor = (repo: FleetRepo): Manifest[string] => ({
    modified: 1_700_000_000,
    fingerprint: repo.fingerprint,
    head: 'ref: refs/heads/main',
    reference: null,
    description: repo.description,
  });
  const originConfig = configFile(INIT_CONFIG);
  // pull names the hooks directory under its toplevel's real path
  const replicaTop = opts.replica
    ? await mkdir(opts.replica, { recursive: true }).then(() => realpath(opts.replica!))
    : '';
  const replicaConfig = (repo: FleetRepo): string => {
    const owner = wantedMetadata(entryFor(repo), opts.replicaOwner ?? null).owner;
    return configFile([
      ...INIT_CONFIG,
      ...mirrorConfig(emptyHooksDir(replicaTop)),
      ...(owner === null ? [] : [['gitweb.owner', owner] as [string, string]]),
    ]);
  };
  const limit = pLimit(32);
  await Promise.all(
    repos
      .filter(({ repo }) => !opts.only || opts.only.has(repo.path))
      .map(({ repo, c }) =>
        limit(async () => {
          const rel = repo.path.slice(1).split('/');
          if (opts.only) {
            for (const top of [opts.origin, opts.replica, opts.out])
              if (top) await rm(join(top, ...rel), { recursive: true, force: true });
          }
          const commitZ = deflateSync(c.raw);
          await writeRepo(join(opts.origin, ...rel), repo, commitZ, originConfig);
          if (opts.replica) await writeRepo(join(opts.replica, ...rel), repo, commitZ, replicaConfig(repo));
          if (!opts.out) return;
          const bundle = Buffer.concat([
            Buffer.from(`# v2 git bundle\n${repo.commit} refs/heads/main\n\n`),
            pack([
              { type: 1, body: c.body },
              { type: 2, body: Buffer.alloc(0) },
            ]),
          ]);
          const sha256 = createHash('sha256').update(bundle).digest('hex');
          const dir = join(opts.out, ...rel);
          await mkdir(dir, { recursive: true });
          const index: RepoIndex = {
            version: INDEX_VERSION,
            path: repo.path,
            generated,
            fingerprint: repo.fingerprint,
            head: 'ref: refs/heads/main',
            refs: { 'refs/heads/main': repo.commit },
            bundles: [
              {
                uri: `${sha256}.bundle`,
                sha256,
                size: bundle.length,
                creationToken: 1_700_000_000,
                prerequisites: [],
                tips: { 'refs/heads/main': repo.commit },
              },
            ],
            forkgroup: null,
          };
          await Promise.all([
            writeFile(join(dir, `${sha256}.bundle`), bundle),
            writeFile(join(dir, 'index.json'), serializeRepoIndex(index)),
            writeFile(join(dir, 'bundle-list'), renderBundleList(index.bundles, null)),
          ]);
        }),
      ),
  );
  for (const { repo } of repos) {
    manifest[repo.path] = entryFor(repo);
    state[repo.path] = {
      fingerprint: repo.fingerprint,
      head: 'ref: refs/heads/main',
      description: repo.description,
      owner: null,
      symlinks: [],
      lastSuccess: generated,
    };
  }
  if (opts.out) await writeFile(join(opts.out, 'manifest.js.gz'), serializeManifest(manifest));
  if (opts.replica) {
    await rm(join(opts.replica, '.bundlemirror'), { recursive: true, force: true });
    await mkdir(join(opts.replica, '.bundlemirror'), { recursive: true });
    await writeFile(join(opts.replica, '.bundlemirror', 'state.json'), JSON.stringify({ version: 1, repos: state }));
  }
  return repos.map((r) => r.repo);
}
