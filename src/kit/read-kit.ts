/**
 * Unpacks an offline kit while verifying it, trusting nothing in the tar:
 * kit.json must come first; every later entry must be a regular file whose
 * name is one a kit holds (never absolute, never `..`), listed in kit.json,
 * seen once, with the listed size and sha256 (hashed as it is written,
 * into a fresh directory, with O_EXCL). Then every index must parse and
 * every bundle it lists must be a file of the kit with the same sha256 and
 * size. Anything else refuses the whole kit before a single ref moves.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import tar from 'tar-stream';
import { BundlemirrorError, isBundlemirrorError } from '../errors.js';
import { parseManifest, type Manifest } from '../manifest/manifest.js';
import { parseRepoIndex, type RepoIndex } from '../manifest/repo-index.js';
import { lfsObjectRelPath } from '../lfs/oid.js';
import {
  KIT_JSON,
  KIT_MANIFEST,
  KitSchema,
  MAX_KIT_DOCUMENT,
  MAX_KIT_JSON,
  kitRepoDir,
  parseKitName,
  type Kit,
  type KitFile,
} from './kit-format.js';

export interface ExtractedKit {
  kit: Kit;
  /** Where the kit's files now are: a published tree. */
  dir: string;
  manifest: Manifest;
  /** Per repository carried by the kit. */
  indexes: Map<string, RepoIndex>;
}

const TRUNCATED_HINT =
  'the kit file is incomplete or damaged: finish or repeat its download (it resumes with Range like any static file) and check it with `sha256sum -c KIT.sha256`';

function kitError(message: string, hint?: string): BundlemirrorError {
  return new BundlemirrorError('E_KIT', message, { hint });
}

/** Extracts and verifies `file` into `dir` (which must be new and empty). */
export async function extractKit(
  file: string,
  dir: string,
  opts: { signal?: AbortSignal } = {},
): Promise<ExtractedKit> {
  const src = createReadStream(file);
  const opened = new Promise<void>((resolve, reject) => {
    src.once('open', () => resolve());
    src.once('error', reject);
  });
  try {
    await opened;
  } catch (err) {
    throw new BundlemirrorError('E_USAGE', `cannot read kit ${file}: ${(err as Error).message}`, { cause: err });
  }
  const extract = tar.extract();
  src.on('error', (err) => extract.destroy(err));
  src.pipe(extract as unknown as NodeJS.WritableStream);

  let kit: Kit | null = null;
  const expected = new Map<string, KitFile>();
  const seen = new Set<string>();
  try {
    for await (const entry of extract) {
      opts.signal?.throwIfAborted();
      const { name, type, size } = entry.header;
      if (kit === null) {
        if (name !== KIT_JSON) {
          const parsed = parseKitName(name);
          if ('problem' in parsed) throw unsafe(name, parsed.problem);
          throw kitError(
            `the first entry of the kit is ${JSON.stringify(name)}, not ${KIT_JSON}`,
            'this is not a bundlemirror kit, or it was repacked; export it again',
          );
        }
        if (type !== 'file' || (size ?? 0) > MAX_KIT_JSON)
          throw kitError(`${KIT_JSON} is not a regular file of at most ${MAX_KIT_JSON} bytes`);
        kit = parseKitJson(await readAll(entry as unknown as AsyncIterable<Buffer>, MAX_KIT_JSON));
        for (const f of kit.files) expected.set(f.name, f);
        continue;
      }
      const parsed = parseKitName(name);
      if ('problem' in parsed) throw unsafe(name, parsed.problem);
      if (type !== 'file' && type !== 'contiguous-file')
        throw kitError(
          `refusing tar entry ${JSON.stringify(name)}: it is a ${type ?? 'special file'}; a kit holds regular files only`,
        );
      const want = expected.get(name);
      if (!want)
        throw kitError(
          `refusing tar entry ${JSON.stringify(name)}: kit.json does not list it`,
          'the kit was altered after export',
        );
      if (seen.has(name))
        throw kitError(
          `refusing tar entry ${JSON.stringify(name)}: it appears twice`,
          'the kit was altered after export',
        );
      if (size !== want.size)
        throw kitError(
          `${name} is ${size ?? '?'} bytes in the tar, kit.json says ${want.size}`,
          'the kit was altered after export',
        );
      await writeVerified(entry as unknown as AsyncIterable<Buffer>, join(dir, ...name.split('/')), want);
      seen.add(name);
    }
  } catch (err) {
    src.destroy();
    extract.destroy();
    if (isBundlemirrorError(err)) throw err;
    opts.signal?.throwIfAborted();
    throw kitError(`cannot read the kit as a tar: ${(err as Error).message}`, TRUNCATED_HINT);
  }
  if (kit === null) throw kitError(`${file} is empty or not a tar file`, TRUNCATED_HINT);
  const missing = kit.files.filter((f) => !seen.has(f.name));
  if (missing.length)
    throw kitError(
      `the kit ends after ${seen.size} of ${kit.files.length} files (${missing[0]!.name} is missing)`,
      TRUNCATED_HINT,
    );
  return crossCheck(kit, dir);
}

function unsafe(name: string, problem: string): BundlemirrorError {
  return new BundlemirrorError('E_UNSAFE_NAME', `refusing tar entry ${JSON.stringify(name)}: its name ${problem}`, {
    hint: 'this kit was not written by bundlemirror export, or was tampered with; nothing was extracted outside the import directory',
  });
}

function parseKitJson(bytes: Buffer): Kit {
  let data: unknown;
  try {
    data = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw kitError(`${KIT_JSON} is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = KitSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw kitError(
      `${KIT_JSON} is not a kit description this bundlemirror reads: ${issue.path.join('.')}: ${issue.message}`,
      'export the kit again with this version of bundlemirror',
    );
  }
  const kit = parsed.data;
  const names = new Set<string>();
  for (const f of kit.files) {
    const name = parseKitName(f.name);
    if ('problem' in name) throw unsafe(f.name, name.problem);
    if (names.has(f.name)) throw kitError(`${KIT_JSON} lists ${f.name} twice`);
    if (name.kind === 'bundle' && name.sha256 !== f.sha256)
      throw kitError(`${KIT_JSON} gives ${f.name} another sha256 than its name`);
    if (name.kind === 'lfs' && name.oid !== f.sha256)
      throw kitError(`${KIT_JSON} gives ${f.name} another sha256 than its name`);
    names.add(f.name);
  }
  if (!names.has(KIT_MANIFEST)) throw kitError(`${KIT_JSON} lists no ${KIT_MANIFEST}`);
  for (const repo of kit.repos) {
    if (!names.has(`${kitRepoDir(repo)}/index.json`))
      throw kitError(`${KIT_JSON} names ${repo} but lists no index.json for it`);
  }
  return kit;
}

async function readAll(stream: AsyncIterable<Buffer>, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of stream) {
    n += c.length;
    if (n > max) throw kitError(`an entry is larger than ${max} bytes`);
    chunks.push(c);
  }
  return Buffer.concat(chunks, n);
}

async function writeVerified(stream: AsyncIterable<Buffer>, dest: string, want: KitFile): Promise<void> {
  await mkdir(dirname(dest), { recursive: true });
  const fh = await open(dest, 'wx', 0o644);
  const hash = createHash('sha256');
  let n = 0;
  try {
    for await (const chunk of stream) {
      n += chunk.length;
      if (n > want.size) throw kitError(`${want.name} is longer than kit.json says (${want.size} bytes)`);
      hash.update(chunk);
      await fh.write(chunk);
    }
  } finally {
    await fh.close();
  }
  const digest = hash.digest('hex');
  if (n !== want.size || digest !== want.sha256) {
    throw new BundlemirrorError(
      'E_BUNDLE_VERIFY',
      `${want.name} in the kit has sha256 ${digest} (${n} bytes), kit.json says ${want.sha256} (${want.size} bytes)`,
      {
        hint: 'the kit is damaged or was altered: nothing was applied; get an intact copy (compare with its .sha256 file)',
      },
    );
  }
}

/** Every index parses and names only bundles the kit holds, with the same sha256 and size. */
async function crossCheck(kit: Kit, dir: string): Promise<ExtractedKit> {
  const byName = new Map(kit.files.map((f) => [f.name, f]));
  const manifestBytes = await readFile(join(dir, KIT_MANIFEST));
  const manifest = parseManifest(manifestBytes, `kit ${KIT_MANIFEST}`).manifest;
  const indexes = new Map<string, RepoIndex>();
  const carried = new Set(kit.repos);
  for (const f of kit.files) {
    const name = parseKitName(f.name);
    if ('problem' in name || name.kind !== 'index') continue;
    if (!carried.has(name.repo))
      throw kitError(`the kit holds an index for ${name.repo} but kit.json does not name it`);
    if (!manifest[name.repo])
      throw kitError(`the kit holds an index for ${name.repo}, which its manifest does not list`);
    if (f.size > MAX_KIT_DOCUMENT) throw kitError(`${f.name} is larger than ${MAX_KIT_DOCUMENT} bytes`);
    const index = parseRepoIndex(await readFile(join(dir, ...f.name.split('/'))), name.repo);
    for (const b of index.bundles) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(b.uri)) throw kitError(`${f.name} points at ${b.uri}, outside the kit`);
      const target = posix.normalize(posix.join(kitRepoDir(name.repo), b.uri));
      const held = byName.get(target);
      if (!held || held.sha256 !== b.sha256 || held.size !== b.size) {
        throw kitError(
          `${f.name} lists bundle ${b.uri} (sha256 ${b.sha256.slice(0, 12)}, ${b.size} bytes), which the kit does not hold as such`,
          'the kit was altered after export',
        );
      }
    }
    for (const o of index.lfs?.objects ?? []) {
      const held = byName.get(`${kitRepoDir(name.repo)}/${lfsObjectRelPath(o.oid)}`);
      if (!held || held.size !== o.size) {
        throw kitError(
          `${f.name} lists LFS object ${o.oid} (${o.size} bytes), which the kit does not hold as such`,
          'the kit was altered after export',
        );
      }
    }
    indexes.set(name.repo, index);
  }
  return { kit, dir, manifest, indexes };
}
