import test, { type ExecutionContext } from 'ava';
import { chmod, readdir, readFile, rename, rm, stat, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { git } from '../src/git/exec.js';
import type { FsckReport } from '../src/replica/fsck/fsck-report.js';
import { runCli, startCli } from './support/cli.js';
import { acquireToplevelLock } from '../src/replica/toplevel-lock.js';
import { fingerprintOf, pull, replicaFor, startOrigin, type Origin } from './support/mirror.js';

const ALPHA = '/pub/alpha.git';
const BETA = '/pub/sub/beta.git';
const DAY = 86_400_000;

interface RecordFile {
  version: 1;
  repos: Record<string, { firstSeen?: string; lastChecked?: string; lastOutcome?: string; nextDue?: string }>;
}

/** An origin and a replica that pulled it, with `fsckSection` in its [fsck] and, with `reportHook`, a report_hook saving each report. */
async function mirrored(t: ExecutionContext, fsckSection = '', opts: { reportHook?: boolean } = {}) {
  const origin = await startOrigin(t);
  const hook = opts.reportHook ? await hookSaving(origin) : { script: '', out: '' };
  const { config, toplevel } = await replicaFor(origin);
  const section = [fsckSection, hook.script && `report_hook = ${hook.script}`].filter(Boolean).join('\n');
  if (section) await writeFile(config, (await readFile(config, 'utf8')) + `\n[fsck]\n${section}\n`);
  const r = await pull(config);
  t.is(r.code, 0, r.stderr);
  return { origin, config, toplevel, hook };
}

async function fsck(config: string, ...args: string[]): Promise<{ code: number; report: FsckReport; stderr: string }> {
  const r = await runCli(['fsck', '-c', config, '--json', ...args]);
  let report: FsckReport;
  try {
    report = JSON.parse(r.stdout) as FsckReport;
  } catch {
    throw new Error(`fsck printed no report (exit ${r.code}): ${r.stderr}`);
  }
  return { code: r.code, report, stderr: r.stderr };
}

const recordOf = async (toplevel: string) =>
  JSON.parse(await readFile(join(toplevel, '.bundlemirror/fsck.json'), 'utf8')) as RecordFile;

async function packCount(gitDir: string): Promise<number> {
  return (await readdir(join(gitDir, 'objects/pack'))).filter((n) => n.endsWith('.pack')).length;
}

/** Turns the repository's packs into loose objects and deletes the file of one blob HEAD reaches; returns its oid. */
async function deleteOneObject(gitDir: string): Promise<string> {
  const packDir = join(gitDir, 'objects/pack');
  const aside = `${gitDir}.packs`;
  await mkdir(aside);
  for (const n of await readdir(packDir)) await rename(join(packDir, n), join(aside, n));
  for (const n of (await readdir(aside)).filter((f) => f.endsWith('.pack')))
    await git(['unpack-objects', '-q'], { gitDir, input: await readFile(join(aside, n)) });
  await rm(aside, { recursive: true });
  const tree = (await git(['ls-tree', '-r', 'HEAD'], { gitDir })).stdout.toString('utf8');
  const blob = /^\d+ blob ([0-9a-f]{40})\t/m.exec(tree)![1]!;
  await rm(join(gitDir, 'objects', blob.slice(0, 2), blob.slice(2)));
  return blob;
}

/** A report hook that saves its stdin (one file per run). */
async function hookSaving(origin: Origin): Promise<{ script: string; out: string }> {
  const out = join(origin.dir, 'reports');
  await mkdir(out);
  const script = join(origin.dir, 'report-hook.sh');
  await writeFile(script, `#!/bin/sh\ncat > "${out}/report-$$.json"\n`);
  await chmod(script, 0o755);
  return { script, out };
}

async function savedReports(out: string): Promise<FsckReport[]> {
  const files = await readdir(out);
  return Promise.all(files.map(async (f) => JSON.parse(await readFile(join(out, f), 'utf8')) as FsckReport));
}

test('--due checks nothing on its first run, records every repository, then checks only the due ones and records when', async (t) => {
  const { config, toplevel } = await mirrored(t, 'frequency = 7');
  const first = await fsck(config, '--due');
  t.is(first.code, 0, first.stderr);
  t.is(first.report.counts.checked, 0);
  t.is(first.report.counts.notDue, 4, 'three repositories and one forkgroup store');
  const seen = await recordOf(toplevel);
  t.deepEqual(
    Object.keys(seen.repos)
      .filter((p) => p.startsWith('/pub/'))
      .sort(),
    [ALPHA, '/pub/forks/alpha-fork.git', BETA],
  );
  t.true(Object.values(seen.repos).every((e) => e.firstSeen !== undefined && e.lastChecked === undefined));

  // alpha was last checked long ago: its turn has come; nobody else's has
  const before = Date.now();
  seen.repos[ALPHA]!.lastChecked = new Date(before - 30 * DAY).toISOString();
  await writeFile(join(toplevel, '.bundlemirror/fsck.json'), JSON.stringify(seen));
  const second = await fsck(config, '--due');
  t.is(second.code, 0, second.stderr);
  t.deepEqual(
    second.report.repos.map((r) => [r.path, r.outcome]),
    [[ALPHA, 'ok']],
  );
  t.is(second.report.counts.notDue, 3);
  const after = await recordOf(toplevel);
  const alpha = after.repos[ALPHA]!;
  t.true(Date.parse(alpha.lastChecked!) >= before);
  t.is(alpha.lastOutcome, 'ok');
  t.true(Date.parse(alpha.nextDue!) > Date.now() && Date.parse(alpha.nextDue!) <= before + 7 * DAY + 60_000);
  t.is(after.repos[BETA]!.lastChecked, undefined);

  // right after, nothing is due; without --due everything is checked and recorded
  t.is((await fsck(config, '--due')).report.counts.checked, 0);
  const all = await fsck(config);
  t.is(all.report.counts.checked, 4);
  t.true(Object.values((await recordOf(toplevel)).repos).every((e) => e.lastChecked !== undefined));
});

test('[fsck] repack = yes repacks what fsck checks: the pack count drops to one, with a commit-graph; every 2nd repack is full', async (t) => {
  const { origin, config, toplevel } = await mirrored(
    t,
    'repack = yes\nfull_repack_every = 2\nextra_repack_flags = --window=5',
  );
  const beta = join(toplevel, BETA);
  for (const n of [1, 2]) {
    await origin.repos[BETA]!.wt.commit(`more ${n}`);
    await origin.repos[BETA]!.wt.push('main');
    await origin.publish();
    const r = await pull(config);
    t.is(r.code, 0, r.stderr);
  }
  t.true((await packCount(beta)) > 1, 'incremental bundles left several packs');

  const first = await fsck(config, BETA);
  t.is(first.code, 0, first.stderr);
  const entry = first.report.repos.find((r) => r.path === BETA)!;
  t.true(entry.repacked);
  t.falsy(entry.fullRepack);
  t.is(await packCount(beta), 1);
  await stat(join(beta, 'objects/info/commit-graph'));
  t.is(await fingerprintOf(beta), await fingerprintOf(join(origin.toplevel, BETA)));

  const second = await fsck(config, BETA);
  t.true(second.report.repos.find((r) => r.path === BETA)!.fullRepack);
  t.is(await packCount(beta), 1);
  // --no-repack overrides the config
  t.false((await fsck(config, '--no-repack', BETA)).report.repos.find((r) => r.path === BETA)!.repacked);
});

test('a repository with a deleted object is reported through report_hook with its path and E_CORRUPT when no reclone_on_errors line matches', async (t) => {
  const { origin, config, toplevel, hook } = await mirrored(t, 'reclone_on_errors = fatal: bad tree object', {
    reportHook: true,
  });
  const blob = await deleteOneObject(join(toplevel, BETA));

  const r = await fsck(config);
  t.is(r.code, 1);
  const [sent, ...more] = await savedReports(hook.out);
  t.is(more.length, 0, 'one report per run');
  t.deepEqual(
    sent!.repos.map((e) => e.path),
    [BETA],
    'only the repository with something to say',
  );
  const entry = sent!.repos[0]!;
  t.is(entry.outcome, 'broken');
  t.is(entry.error?.code, 'E_CORRUPT');
  t.true(entry.problems.some((p) => p.includes(blob)));
  t.is(sent!.counts.broken, 1);
  t.is(sent!.toplevel, toplevel);
  // and one log line per problem, naming the repository
  const log = await readFile(join(origin.dir, 'pull.log'), 'utf8');
  t.true(log.split('\n').some((l) => l.includes(BETA) && l.includes(blob)));
});

test('ignore_errors: a finding that matches is not a problem, and a clean run sends no report', async (t) => {
  const { config, toplevel, hook } = await mirrored(t, `ignore_errors = missing blob\n                broken link`, {
    reportHook: true,
  });
  await deleteOneObject(join(toplevel, BETA));
  const r = await fsck(config, '--no-repair');
  t.is(r.code, 0, r.stderr);
  t.is(r.report.repos.find((e) => e.path === BETA)!.outcome, 'ok');
  t.deepEqual(await readdir(hook.out), []);
});

test('reclone_on_errors: a matching finding has the repository cloned again from the origin', async (t) => {
  const { origin, config, toplevel } = await mirrored(t, 'reclone_on_errors = missing blob');
  const blob = await deleteOneObject(join(toplevel, BETA));
  const r = await fsck(config);
  t.is(r.code, 0, r.stderr);
  const entry = r.report.repos.find((e) => e.path === BETA)!;
  t.is(entry.outcome, 'repaired');
  t.true(entry.problems.some((p) => p.includes(blob)));
  t.is(await fingerprintOf(join(toplevel, BETA)), await fingerprintOf(join(origin.toplevel, BETA)));
  const check = await git(['fsck', '--full', '--no-dangling'], { gitDir: join(toplevel, BETA), okCodes: [1, 2, 4, 8] });
  t.is(check.code, 0);
});

test("the systemd unit's command is a valid fsck --due run of the replica, and its timer fires daily", async (t) => {
  const { config, toplevel } = await mirrored(t);
  const unit = await readFile(new URL('../contrib/bundlemirror-fsck.service', import.meta.url), 'utf8');
  const words = /^ExecStart=(.*)$/m.exec(unit)![1]!.split(/\s+/);
  t.regex(words[0]!, /\/bin\/bundlemirror$/);
  t.is(words[1], 'fsck');
  t.true(words.includes('--due'));
  const args = words.slice(1).map((w, i, all) => (all[i - 1] === '-c' ? config : w));
  const r = await runCli(args);
  t.is(r.code, 0, r.stderr);
  t.is(Object.keys((await recordOf(toplevel)).repos).length, 4, 'every repository and store recorded');
  t.regex(unit, /^IOSchedulingClass=idle$/m);
  const timer = await readFile(new URL('../contrib/bundlemirror-fsck.timer', import.meta.url), 'utf8');
  t.regex(timer, /^OnCalendar=\*-\*-\* \d\d:\d\d:\d\d$/m);
  t.regex(timer, /^Unit=bundlemirror-fsck\.service$/m);
});

test('Ctrl-C exits 130: what was verified healthy is recorded, the unfinished repair is not, and no report is sent', async (t) => {
  const { config, toplevel, hook } = await mirrored(t, '', { reportHook: true });
  await deleteOneObject(join(toplevel, BETA));
  // a pull holds the lock: fsck checks everything, then waits to repair beta
  const release = await acquireToplevelLock(toplevel);
  t.teardown(release);
  const run = startCli(t, ['fsck', '-c', config, '--wait', '120']);
  const deadline = Date.now() + 90_000;
  while (!/waiting/.test(run.output().stdout + run.output().stderr) && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 100));
  run.signal('SIGINT');
  const end = await run.done;
  t.is(end.code, 130, end.stderr);
  const record = (await recordOf(toplevel)).repos;
  t.is(record[ALPHA]?.lastOutcome, 'ok');
  t.truthy(record[ALPHA]?.lastChecked);
  t.is(record[BETA]?.lastChecked, undefined);
  t.deepEqual(await readdir(hook.out), []);
});
