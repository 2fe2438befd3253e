/**
 * Attacks a hostile origin can make on a replica, built the way an
 * attacker would build them: a real origin, published, its tree then
 * edited by hand, served over real HTTP on 127.0.0.1 or carried in an
 * offline kit. Shared by test/reliability/attacks.test.ts and the
 * randomized runner (test/reliability/run.ts), which counts them.
 *
 * What "held" means is checked as a user would check it: a checksum listing
 * of a decoy directory beside the replica is the same before and after,
 * the marker a planted hook would create does not exist, no symlink inside
 * a mirrored repository leads anywhere, and every repository that was not
 * the target of a refusal has the origin's fingerprint.
 */
import { createHash } from 'node:crypto';
import { chmod, lstat, mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import { parseManifest, type Manifest } from '../../src/manifest/manifest.js';
import { publish } from '../../src/origin/publish.js';
import { loadPullConfig } from '../../src/replica/config/config.js';
import { memoryLog } from '../../src/replica/log.js';
import { pull, type PullReport } from '../../src/replica/pull.js';
import { importKit } from '../../src/kit/import.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { quoteUntrusted } from '../../src/format/untrusted.js';
import { runCli } from './cli.js';
import { writeConfig } from './mirror.js';
import { makeRepo, showRefOf, tempDir, type WorkTree } from './repos.js';
import { stateFilesText } from './state.js';

export interface AttackWorld {
  dir: string;
  originTop: string;
  out: string;
  server: RunningServer;
  /** Beside the replica, with files an attack would like to change. */
  decoy: string;
  /** `<dir>/m/replica`: two levels below `dir`, so a link that climbs two levels out of it lands in `dir`. */
  toplevel: string;
  config: string;
  /** Where a planted hook would leave its mark. */
  marker: string;
  worktrees: Record<string, WorkTree>;
  close(): Promise<void>;
}

export async function attackWorld(repos: string[], opts: { extraConfig?: string } = {}): Promise<AttackWorld> {
  const { dir, cleanup } = await tempDir('bm-attack-');
  const originTop = join(dir, 'origin');
  const out = join(dir, 'published');
  const worktrees: Record<string, WorkTree> = {};
  for (const r of repos) worktrees[r] = (await makeRepo(dir, originTop, r.slice(1), { commits: 1 })).wt;
  const report = await publish({ toplevel: originTop, out });
  if (report.failed.length) throw new Error(`publish failed: ${report.failed.map((e) => e.message).join('; ')}`);
  const server = await startServer({ bundles: out, toplevel: originTop, host: '127.0.0.1', port: 0, log: false });
  const decoy = join(dir, 'decoy');
  const marker = join(dir, 'hook-ran');
  await mkdir(decoy);
  await writeFile(join(decoy, 'victim.git'), 'a file git would append a reflog to\n');
  await writeFile(join(decoy, 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  await writeFile(join(decoy, 'hook.sh'), `#!/bin/sh\necho "$@" >> '${marker}'\n`);
  await chmod(join(decoy, 'hook.sh'), 0o755);
  const toplevel = join(dir, 'm', 'replica');
  const config = await writeConfig(dir, {
    toplevel,
    manifest: `${server.url}/manifest.js.gz`,
    site: `${server.url}/git`,
    extra: opts.extraConfig ?? '',
  });
  return {
    dir,
    originTop,
    out,
    server,
    decoy,
    toplevel,
    config,
    marker,
    worktrees,
    close: async () => {
      await server.close({ graceMs: 100 });
      await cleanup();
    },
  };
}

/** A checksum listing of everything under `dir`: type, sha256 of files, link targets. */
export async function checksums(dir: string): Promise<string[]> {
  const lines: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const name of (await readdir(d).catch(() => [] as string[])).sort()) {
      const p = join(d, name);
      const st = await lstat(p);
      const rel = relative(dir, p);
      if (st.isSymbolicLink()) lines.push(`${rel} -> ${await readlink(p)}`);
      else if (st.isDirectory()) {
        lines.push(`${rel}/`);
        await walk(p);
      } else
        lines.push(
          `${rel} ${st.mode.toString(8)} ${createHash('sha256')
            .update(await readFile(p))
            .digest('hex')}`,
        );
    }
  };
  await walk(dir);
  return lines;
}

/** Symlinks found inside mirrored repositories (none is ever made there). */
export async function linksInsideRepos(toplevel: string, repos: string[]): Promise<string[]> {
  const found: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const name of await readdir(d).catch(() => [] as string[])) {
      const p = join(d, name);
      const st = await lstat(p);
      if (st.isSymbolicLink()) found.push(`${relative(toplevel, p)} -> ${await readlink(p)}`);
      else if (st.isDirectory()) await walk(p);
    }
  };
  for (const r of repos) await walk(join(toplevel, ...r.slice(1).split('/')));
  return found;
}

export async function fingerprintsMatch(w: AttackWorld, repos: string[]): Promise<string[]> {
  const wrong: string[] = [];
  for (const r of repos) {
    const mine = await showRefOf(join(w.toplevel, ...r.slice(1).split('/'))).catch(() => null);
    if (mine === null || mine !== (await showRefOf(join(w.originTop, ...r.slice(1).split('/'))))) wrong.push(r);
  }
  return wrong;
}

export async function readPublishedManifest(w: AttackWorld): Promise<Manifest> {
  return parseManifest(await readFile(join(w.out, 'manifest.js.gz'))).manifest;
}

export async function writePublishedManifest(w: AttackWorld, m: Record<string, unknown> | string): Promise<void> {
  await writeFile(join(w.out, 'manifest.js.gz'), gzipSync(typeof m === 'string' ? m : JSON.stringify(m)));
}

// ---------------------------------------------------------------- symlinks

/**
 * The repositories of the symlink attack. `/a.git` gets a legitimate-looking
 * link two levels deeper than itself (`/d1/d2/deep.git`); the others list
 * links written *through* it, whose targets, computed from the path as
 * written, climb two levels out of the toplevel into the decoy directory:
 * a hook (`hooks/reference-transaction` -> decoy/hook.sh), a reflog
 * (`logs/refs/heads/main` -> decoy/victim.git) and a file served onward
 * (`passwd` -> decoy/passwd). Plus a link placed inside a repository
 * directly and one inside the state directory's neighbour, the objstore.
 */
export const SYMLINK_REPOS = ['/a.git', '/decoy/hook.sh', '/decoy/victim.git', '/decoy/passwd', '/good.git'];

export const SYMLINK_ATTACKS: Record<string, string[]> = {
  '/a.git': ['/d1/d2/deep.git'],
  '/decoy/hook.sh': ['/d1/d2/deep.git/hooks/reference-transaction'],
  '/decoy/victim.git': ['/d1/d2/deep.git/logs/refs/heads/main', '/good.git/logs/HEAD'],
  '/decoy/passwd': ['/d1/d2/deep.git/passwd', '/objstore/passwd.git'],
  '/good.git': ['/aliases/good.git'],
};

/** The links an honest replica makes: every other one is refused. */
export const SYMLINK_ALLOWED = ['/d1/d2/deep.git', '/aliases/good.git'];

export async function writeSymlinkManifest(w: AttackWorld): Promise<void> {
  const m = (await readPublishedManifest(w)) as Record<string, Record<string, unknown>>;
  for (const [repo, links] of Object.entries(SYMLINK_ATTACKS)) m[repo] = { ...m[repo], symlinks: links };
  await writePublishedManifest(w, m);
}

export interface AttackOutcome {
  /** What the replica refused, as (code, repository) pairs. */
  refused: { code: string; repo: string | undefined; what: string }[];
  /** Problems: anything that shows the attack worked or the replica broke. */
  problems: string[];
}

/**
 * The symlink attack end to end: pull (over HTTP, or importing a kit
 * exported from the hostile tree), then a push to `/a.git` and a second
 * pull, whose ref update would run the hook and append to the reflog if
 * either link had been made.
 */
export async function symlinkAttack(w: AttackWorld, via: 'http' | 'kit'): Promise<AttackOutcome> {
  const before = await checksums(w.decoy);
  const refused: AttackOutcome['refused'] = [];
  const problems: string[] = [];
  const config = loadPullConfig(w.config);
  const run = async (): Promise<PullReport> => {
    await writeSymlinkManifest(w);
    if (via === 'http') return pull(config, { log: memoryLog() });
    const kit = join(w.dir, `kit-${Date.now()}.tar`);
    const r = await runCli(['export', '--bundles', w.out, '--out', kit]);
    if (r.code !== 0) throw new Error(`export failed: ${r.stderr}`);
    return (await importKit(config, { kit, log: memoryLog() })).pull;
  };
  for (let round = 0; round < 2; round += 1) {
    if (round === 1) {
      await w.worktrees['/a.git']!.commit('after the links');
      await w.worktrees['/a.git']!.push('main');
      const report = await publish({ toplevel: w.originTop, out: w.out });
      if (report.failed.length) throw new Error('publish failed');
    }
    const report = await run();
    for (const e of [...report.failed, ...(report.warnings ?? [])])
      refused.push({ code: e.code, repo: e.repo, what: e.message });
    for (const e of report.failed) problems.push(`round ${round + 1}: ${e.repo} failed: ${e.code}`);
  }
  if (JSON.stringify(await checksums(w.decoy)) !== JSON.stringify(before))
    problems.push('the decoy directory beside the replica changed');
  const ran = await readFile(w.marker, 'utf8').catch(() => null);
  if (ran !== null) problems.push(`a hook ran: ${ran.trim()}`);
  const inside = await linksInsideRepos(w.toplevel, SYMLINK_REPOS);
  if (inside.length) problems.push(`symlinks inside repositories: ${inside.join(', ')}`);
  const wrong = await fingerprintsMatch(w, SYMLINK_REPOS);
  if (wrong.length) problems.push(`not in sync: ${wrong.join(', ')}`);
  for (const link of SYMLINK_ALLOWED) {
    const st = await lstat(join(w.toplevel, link)).catch(() => null);
    if (!st?.isSymbolicLink()) problems.push(`${link}: the legitimate symlink was not made`);
  }
  return { refused, problems };
}

// ---------------------------------------------------------------- redirects

export interface Front {
  url: string;
  /** Exact request targets (path and query) answered with a 302 to the given URL. */
  redirects: Map<string, string>;
  close(): Promise<void>;
}

/**
 * An HTTP front on 127.0.0.1 for the real server: the published tree under
 * `/tree/`, the same files again under `/elsewhere/` (outside the tree, on
 * the same host), and 302s where the test says.
 */
export async function startFront(target: string): Promise<Front> {
  const { createServer, request } = await import('node:http');
  const redirects = new Map<string, string>();
  const server = createServer((req, res) => {
    const to = redirects.get(req.url ?? '');
    if (to) {
      res.writeHead(302, { location: to, 'content-length': '0' }).end();
      return;
    }
    const m = /^\/(tree|elsewhere)(\/.*)$/.exec(req.url ?? '');
    if (!m) {
      res.writeHead(404, { 'content-length': '0' }).end();
      return;
    }
    const up = new URL(target);
    const headers = { ...req.headers, host: up.host };
    const fwd = request(
      { host: up.hostname, port: up.port, path: m[2]!.replace(/\?.*$/, ''), method: req.method, headers },
      (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      },
    );
    fwd.on('error', () => res.destroy());
    req.pipe(fwd);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    redirects,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export const REDIRECT_REPOS = ['/a.git', '/b.git', '/c.git', '/d.git'];

export interface RedirectSetup {
  origin: Front;
  other: Front;
  config: string;
}

/**
 * `/a.git`'s bundle is redirected within the tree (allowed), `/b.git`'s
 * index.json to the same path on another port, `/c.git`'s bundle to the
 * same host outside the tree, `/d.git` untouched. With `manifestElsewhere`,
 * the manifest itself is redirected to the other port.
 */
export async function redirectSetup(
  w: AttackWorld,
  opts: { manifestElsewhere?: boolean; allowOther?: boolean } = {},
): Promise<RedirectSetup> {
  const origin = await startFront(w.server.url);
  const other = await startFront(w.server.url);
  const bundleOf = async (repo: string) => {
    const index = JSON.parse(await readFile(join(w.out, repo.slice(1), 'index.json'), 'utf8')) as {
      bundles: { uri: string }[];
    };
    return `${repo.slice(1)}/${index.bundles[0]!.uri}`;
  };
  origin.redirects.set(`/tree/${await bundleOf('/a.git')}`, `/tree/${await bundleOf('/a.git')}?moved`);
  origin.redirects.set('/tree/b.git/index.json', `${other.url}/tree/b.git/index.json`);
  origin.redirects.set(`/tree/${await bundleOf('/c.git')}`, `/elsewhere/${await bundleOf('/c.git')}`);
  if (opts.manifestElsewhere) origin.redirects.set('/tree/manifest.js.gz', `${other.url}/tree/manifest.js.gz`);
  const config = await writeConfig(w.dir, {
    toplevel: w.toplevel,
    manifest: `${origin.url}/tree/manifest.js.gz`,
    site: `${w.server.url}/git`,
    name: 'redirect.conf',
    extra: opts.allowOther ? `[bundlemirror]\nredirects = ${other.url}/tree/\n` : '',
  });
  return { origin, other, config };
}

// ---------------------------------------------------------------- nesting and size

export const BOUNDS_REPOS = ['/deep.git', '/wide.git', '/good.git'];

/** `/deep.git` carries an array nested 200,000 deep under an unknown key, `/wide.git` 100 KiB of unknown keys. */
export async function writeBoundsManifest(w: AttackWorld): Promise<void> {
  const m = await readPublishedManifest(w);
  const deep = JSON.stringify({ ...m['/deep.git'], extra: 'DEEP' }).replace(
    '"DEEP"',
    '['.repeat(200_000) + ']'.repeat(200_000),
  );
  const wide = JSON.stringify({
    ...m['/wide.git'],
    notes: Array.from({ length: 1000 }, (_, i) => `note ${i} `.padEnd(100, '.')),
  });
  await writePublishedManifest(
    w,
    `{"/deep.git": ${deep}, "/wide.git": ${wide}, "/good.git": ${JSON.stringify(m['/good.git'])}}`,
  );
}

// ---------------------------------------------------------------- strings for terminals and logs

/** Characters that must never reach a terminal, a log line or state.json raw. */
export const UNSAFE_OUTPUT =
  /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;

/** Repository paths an origin could use to rewrite a terminal or a log, each refused. */
export const HOSTILE_PATHS = [
  '/pub/c1\u009b2J.git',
  '/pub/ls\u2028fake.git',
  '/pub/rlo\u202egpj.git',
  '/pub/iso\u2066x.git',
  '/pub/nel\u0085.git',
];

export const STRING_REPOS = ['/good.git', '/uri.git'];

/** The manifest lists the hostile paths; `/uri.git`'s index names a bundle whose URL carries C1 and bidi controls. */
export async function writeStringsAttack(w: AttackWorld): Promise<void> {
  const m = (await readPublishedManifest(w)) as Record<string, Record<string, unknown>>;
  for (const p of HOSTILE_PATHS) m[p] = { ...m['/good.git'] };
  m['/good.git'] = { ...m['/good.git'], description: 'good \u001b]0;owned\u0007 \u202e', owner: 'eve \u009b31m' };
  await writePublishedManifest(w, m);
  const file = join(w.out, 'uri.git', 'index.json');
  const index = JSON.parse(await readFile(file, 'utf8')) as { bundles: { uri: string }[] };
  index.bundles[0]!.uri = 'http://example.invalid/\u009b2J\u202eevil\u2028.bundle';
  await writeFile(file, JSON.stringify(index));
}

/** Every place a pull writes text a person reads: its stderr, the log, state.json, status. */
export async function outputsOfAPull(
  w: AttackWorld,
  args: string[] = ['-v'],
): Promise<{
  code: number;
  texts: { stderr: string; stdout: string; log: string; state: string; status: string; statusJson: string };
}> {
  const r = await runCli(['pull', '-c', w.config, '--no-progress', ...args]);
  const status = await runCli(['status', '-c', w.config]);
  const statusJson = await runCli(['status', '-c', w.config, '--json']);
  return {
    code: r.code,
    texts: {
      stderr: r.stderr,
      stdout: r.stdout,
      log: await readFile(join(w.dir, 'pull.log'), 'utf8').catch(() => ''),
      state: await stateFilesText(w.toplevel),
      status: status.stdout + status.stderr,
      statusJson: statusJson.stdout,
    },
  };
}

// ---------------------------------------------------------------- the suite, as the reliability run counts it

export interface AttackResult extends AttackOutcome {
  name: string;
  ms: number;
}

async function inWorld(repos: string[], run: (w: AttackWorld) => Promise<AttackOutcome>): Promise<AttackOutcome> {
  const w = await attackWorld(repos);
  try {
    return await run(w);
  } finally {
    await w.close();
  }
}

const refusalsOf = (errors: { code: string; repo?: string | undefined; message: string }[]) =>
  errors.map((e) => ({ code: e.code, repo: e.repo, what: e.message }));

/** Each attack once, against a fresh origin and replica; `quick` leaves out the slower ones (kit, strings, credentials). */
export async function runAttacks(
  opts: { quick?: boolean; onResult?: (r: AttackResult) => void } = {},
): Promise<AttackResult[]> {
  const attacks: [string, () => Promise<AttackOutcome>][] = [
    ['symlinks climbing out (HTTP)', () => inWorld(SYMLINK_REPOS, (w) => symlinkAttack(w, 'http'))],
    [
      'redirects off the tree',
      () =>
        inWorld(REDIRECT_REPOS, async (w) => {
          const s = await redirectSetup(w);
          try {
            const report = await pull(loadPullConfig(s.config), { log: memoryLog() });
            const problems = report.failed.filter((e) => e.code !== 'E_REDIRECT').map((e) => `${e.repo}: ${e.code}`);
            if (report.failed.length !== 2) problems.push(`${report.failed.length} repositories refused, expected 2`);
            problems.push(...(await fingerprintsMatch(w, ['/a.git', '/d.git'])).map((p) => `${p}: not in sync`));
            return { refused: refusalsOf(report.failed), problems };
          } finally {
            await Promise.all([s.origin.close(), s.other.close()]);
          }
        }),
    ],
    [
      'an entry nested 200,000 deep',
      () =>
        inWorld(BOUNDS_REPOS, async (w) => {
          await writeBoundsManifest(w);
          const report = await pull(loadPullConfig(w.config), { log: memoryLog() });
          const again = await runCli(['pull', '-c', w.config, '--no-progress']);
          const problems = (await fingerprintsMatch(w, ['/good.git'])).map((p) => `${p}: not in sync`);
          if (again.code !== 1) problems.push(`the next run exited ${again.code}`);
          if (report.problems.length !== 2) problems.push(`${report.problems.length} entries refused, expected 2`);
          return {
            refused: report.problems.map((p) => ({ code: 'E_MANIFEST', repo: p.path, what: p.problem })),
            problems,
          };
        }),
    ],
  ];
  if (!opts.quick) {
    attacks.push(
      ['symlinks climbing out (kit)', () => inWorld(SYMLINK_REPOS, (w) => symlinkAttack(w, 'kit'))],
      [
        'control and bidi characters',
        () =>
          inWorld(STRING_REPOS, async (w) => {
            await writeStringsAttack(w);
            const { texts } = await outputsOfAPull(w);
            const problems = Object.entries(texts)
              .filter(([, text]) => UNSAFE_OUTPUT.test(text))
              .map(([where]) => `raw control characters in ${where}`);
            problems.push(...(await fingerprintsMatch(w, ['/good.git'])).map((p) => `${p}: not in sync`));
            const refused = HOSTILE_PATHS.filter((p) => texts.stderr.includes(quoteUntrusted(p))).map((p) => ({
              code: 'E_MANIFEST',
              repo: quoteUntrusted(p),
              what: 'refused path',
            }));
            if (refused.length !== HOSTILE_PATHS.length)
              problems.push(`${HOSTILE_PATHS.length - refused.length} hostile paths not named`);
            return { refused, problems };
          }),
      ],
    );
  }
  const results: AttackResult[] = [];
  for (const [name, run] of attacks) {
    const started = Date.now();
    let outcome: AttackOutcome;
    try {
      outcome = await run();
    } catch (err) {
      outcome = { refused: [], problems: [`the attack run itself failed: ${(err as Error).message}`] };
    }
    const r = { name, ms: Date.now() - started, ...outcome };
    results.push(r);
    opts.onResult?.(r);
  }
  return results;
}
