import test from 'ava';
import { access, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readManifestFile } from '../src/manifest/manifest.js';
import { toplevelWith } from './support/repos.js';
import { runCli } from './support/cli.js';

async function setup(t: { teardown: (fn: () => Promise<void>) => void }) {
  const { dir, toplevel, out, repos } = await toplevelWith(t, ['pub/alpha.git', 'pub/beta.git', 'testing/scratch.git']);
  return { dir, toplevel, out, alpha: repos['pub/alpha.git']!, config: join(dir, 'publish.conf') };
}

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

async function uris(out: string, path: string): Promise<string[]> {
  const text = await readFile(join(out, path.slice(1), 'bundle-list'), 'utf8');
  return [...text.matchAll(/^\s*uri = (.*)$/gm)].map((m) => m[1]!);
}

const paths = async (out: string) => Object.keys(await readManifestFile(join(out, 'manifest.js.gz'))).sort();

test('publish -c FILE does what the same flags do: toplevel, bundles, base_url, ignore from [publish]', async (t) => {
  const { toplevel, out, config } = await setup(t);
  await writeFile(
    config,
    [
      '[publish]',
      `toplevel = ${toplevel}`,
      `bundles = ${out}`,
      'base_url = https://cdn.example/tree',
      'ignore = /testing/*',
      '         /nothing/*',
      'quiet = yes',
      'grace_days = 3',
      '',
    ].join('\n'),
  );
  const r = await runCli(['publish', '-c', config]);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(await paths(out), ['/pub/alpha.git', '/pub/beta.git']);
  for (const p of ['/pub/alpha.git', '/pub/beta.git'])
    for (const u of await uris(out, p)) t.true(u.startsWith(`https://cdn.example/tree${p}/`), u);
  t.is(r.stderr, '', 'quiet = yes: nothing but the summary');
});

test('flags on the command line win over the file, a repeatable one replacing its whole list', async (t) => {
  const { toplevel, out, config, dir } = await setup(t);
  await writeFile(
    config,
    `[publish]\ntoplevel = ${toplevel}\nbundles = ${join(dir, 'elsewhere')}\nignore = /testing/*\nbase_url = https://old.example/\n`,
  );
  const r = await runCli([
    'publish',
    '-c',
    config,
    '--bundles',
    out,
    '--ignore',
    '/pub/beta.git',
    '--base-url',
    'https://new.example/t',
    '-q',
  ]);
  t.is(r.code, 0, r.stderr);
  t.false(await exists(join(dir, 'elsewhere')), "the file's bundles is not used");
  t.deepEqual(await paths(out), ['/pub/alpha.git', '/testing/scratch.git']);
  for (const u of await uris(out, '/pub/alpha.git')) t.true(u.startsWith('https://new.example/t/pub/alpha.git/'), u);
});

test("an existing grokmirror.conf works: [core] toplevel and [manifest] ignore (disk-path globs) are honoured, grok-manifest's other keys warn", async (t) => {
  const { toplevel, out, config } = await setup(t);
  await writeFile(
    config,
    [
      '[core]',
      `toplevel = ${toplevel}`,
      'manifest = ${toplevel}/manifest.js.gz',
      'log = ${toplevel}/log',
      '[manifest]',
      'pretty = no',
      'ignore = ${core:toplevel}/testing/*',
      'fetch_objstore = no',
      'check_export_ok = no',
      '[remote]',
      'site = https://git.example.org',
      '[pull]',
      'include = *',
      '[publish]',
      `bundles = ${out}`,
      '',
    ].join('\n'),
  );
  const r = await runCli(['publish', '-c', config]);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(await paths(out), ['/pub/alpha.git', '/pub/beta.git']);
  for (const key of ['[core] manifest', '[core] log', '[manifest] pretty', '[manifest] fetch_objstore', '[pull]'])
    t.true(r.stderr.includes(`${key}`) && /warning/.test(r.stderr), `${key} is reported`);
  t.false(await exists(join(toplevel, 'manifest.js.gz')), 'nothing is written into the toplevel');
  // --quiet keeps the notes about grokmirror settings out of a cron mail
  const q = await runCli(['publish', '-c', config, '-q']);
  t.is(q.code, 0, q.stderr);
  t.is(q.stderr, '');
});

test('a near miss of a key stops with E_CONFIG and exit 2 before anything is published, naming the key meant', async (t) => {
  const { toplevel, out, config } = await setup(t);
  for (const [section, typo, meant] of [
    ['publish', 'ignroe = /testing/*', 'ignore'],
    ['publish', 'base_ur = https://cdn.example/', 'base_url'],
    ['core', 'toplevl = /elsewhere', 'toplevel'],
    ['manifest', 'ignor = /testing/*', 'ignore'],
  ] as const) {
    const head = section === 'publish' ? [] : [`[${section}]`];
    const lines = [`[publish]`, `toplevel = ${toplevel}`, `bundles = ${out}`, ...head, typo, ''];
    await writeFile(config, lines.join('\n'));
    const r = await runCli(['publish', '-c', config]);
    t.is(r.code, 2, `${typo}: ${r.stderr}`);
    t.regex(r.stderr, /\[E_CONFIG\]/);
    t.true(r.stderr.includes(`[${section}] ${typo.split(' ')[0]}`), r.stderr);
    t.true(r.stderr.includes(meant), r.stderr);
    t.false(await exists(out), 'nothing published');
  }
});

test('invalid values and missing settings are E_CONFIG (exit 2) naming section and key', async (t) => {
  const { toplevel, out, config } = await setup(t);
  const cases: [string, RegExp][] = [
    [`[publish]\ntoplevel = ${toplevel}\nbundles = ${out}\nwait = soon\n`, /\[publish\] wait/],
    [`[publish]\ntoplevel = ${toplevel}\nbundles = ${out}\nquiet = perhaps\n`, /\[publish\] quiet/],
    [`[publish]\ntoplevel = ${toplevel}\nbundles = ${out}\nbase_url = ftp://x/\n`, /\[publish\] base_url/],
    [`[publish]\ntoplevel = ${toplevel}\nbundles = ${out}\nnotify = replica:8090\n`, /\[publish\] notify/],
    [`[publish]\ntoplevel = ${toplevel}\n`, /\[publish\] bundles/],
    [`[publish]\ntoplevel = ${toplevel}\nout = ${out}\n`, /\[publish\] out/],
    [`[core]\ntoplevel = ${toplevel}\n[publish]\ntoplevel = /srv/other\nbundles = ${out}\n`, /\[publish\] toplevel/],
  ];
  for (const [text, where] of cases) {
    await writeFile(config, text);
    const r = await runCli(['publish', '-c', config]);
    t.is(r.code, 2, `${text}: ${r.stderr}`);
    t.regex(r.stderr, /\[E_CONFIG\]/, text);
    t.regex(r.stderr, where, text);
  }
  const missing = await runCli(['publish', '-c', join(toplevel, 'nope.conf')]);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /\[E_CONFIG\]/);
  await writeFile(config, `[publish]\nbundles = ${out}\n`);
  const noTop = await runCli(['publish', '-c', config]);
  t.is(noTop.code, 2, noTop.stderr);
  t.regex(noTop.stderr, /\[E_USAGE\]/);
  t.false(await exists(out));
});

test('every flag publish --help lists has its [publish] key; --config-check shows where each value came from and publishes nothing', async (t) => {
  const { toplevel, out, config, dir } = await setup(t);
  const help = await runCli(['publish', '--help']);
  const listed = [...help.stdout.matchAll(/^ {2}(?:-\w, )?--([a-z0-9-]+)( <)?/gm)];
  const flags = listed.map((m) => m[1]!);
  const takesValue = new Set(listed.filter((m) => m[2]).map((m) => m[1]!));
  const perRun = new Set(['config', 'config-check', 'help', 'remove', 'force', 'json']);
  const sample: Record<string, string> = {
    toplevel,
    bundles: out,
    'base-url': 'https://cdn.example/tree',
    ignore: '/testing/*',
    wait: '30',
    'max-incrementals': '12',
    'chain-ratio': '0.25',
    'grace-days': '2',
    'sign-key': join(dir, 'key'),
    quiet: 'yes',
    notify: 'http://replica.example:8090/notify',
    'notify-token-file': join(dir, 'token'),
    state: join(dir, 'state'),
    's3-path-style': 'yes',
    's3-part-size': String(8 << 20),
  };
  const keyed = flags.filter((f) => !perRun.has(f));
  t.true(keyed.length >= 12, keyed.join(' '));
  const lines = ['[publish]'];
  for (const f of keyed) {
    const key = f.replace(/-/g, '_');
    lines.push(`${key} = ${sample[f] ?? (takesValue.has(f) ? '1' : 'yes')}`);
  }
  await writeFile(config, lines.join('\n') + '\n');
  const r = await runCli(['publish', '-c', config, '--config-check', '--wait', '5']);
  t.is(r.code, 0, r.stderr);
  for (const f of keyed) {
    const key = f.replace(/-/g, '_');
    if (!takesValue.has(f)) continue; // switches: shown as true
    const line = r.stdout.split('\n').find((l) => l.startsWith(`${key} = `));
    t.truthy(line, `${key} is read: ${r.stdout}`);
    if (f === 'wait') t.regex(line!, /--wait/, 'the command line wins, and says so');
    else if (sample[f]) t.true(line!.includes(`[publish] ${key}`), line!);
  }
  t.regex(r.stdout, /usable \(0 warnings\)/);
  t.false(await exists(out), 'a check publishes nothing');
});

test('bundles holding a URL passes through as the flag value would (an object-store destination)', async (t) => {
  const { toplevel, config } = await setup(t);
  await writeFile(config, `[publish]\ntoplevel = ${toplevel}\nbundles = s3://bucket/tree\n`);
  const r = await runCli(['publish', '-c', config, '--config-check']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^bundles = s3:\/\/bucket\/tree /m);
});

test('a base_url changed in the file reaches every bundle-list at the next publish, also from a hook publish of one repository', async (t) => {
  const { toplevel, out, config, alpha } = await setup(t);
  const write = (base: string) =>
    writeFile(config, `[publish]\ntoplevel = ${toplevel}\nbundles = ${out}\nbase_url = ${base}\nquiet = yes\n`);
  await write('https://a.example/tree');
  t.is((await runCli(['publish', '-c', config])).code, 0);
  await write('https://b.example/other');
  await alpha.wt.commit('more');
  await alpha.wt.push('main');
  const hook = await runCli(['publish', '-c', config, alpha.bare]);
  t.is(hook.code, 0, hook.stderr);
  for (const p of await paths(out))
    for (const u of await uris(out, p)) t.true(u.startsWith(`https://b.example/other${p}/`), `${p}: ${u}`);
});

test('contrib/publish.conf is usable as shipped, and publish -c CONFIG -x takes toplevel and bundles from it', async (t) => {
  const { toplevel, out, config } = await setup(t);
  const shipped = new URL('../contrib/publish.conf', import.meta.url).pathname;
  const check = await runCli(['publish', '-c', shipped, '--config-check']);
  t.is(check.code, 0, check.stderr);
  t.regex(check.stdout, /usable \(0 warnings\)/);
  t.regex(check.stdout, /^bundles = \/srv\/bundles /m);

  await writeFile(config, `[publish]\ntoplevel = ${toplevel}\nbundles = ${out}\nquiet = yes\n`);
  t.is((await runCli(['publish', '-c', config])).code, 0);
  await rm(join(toplevel, 'testing/scratch.git'), { recursive: true });
  const x = await runCli(['publish', '-c', config, '-x', join(toplevel, 'testing/scratch.git')]);
  t.is(x.code, 0, x.stderr);
  t.deepEqual(await paths(out), ['/pub/alpha.git', '/pub/beta.git']);
});
