import test from 'ava';
import { isBundlemirrorError } from '../src/errors.js';
import { parsePullConfig, type PullConfig } from '../src/replica/config/config.js';

const MINIMAL = `[core]\ntoplevel = /srv/mirror\n[remote]\nsite = https://origin.example\nmanifest = \${site}/manifest.js.gz\n`;

function parse(fsck: string): PullConfig {
  return parsePullConfig(`${MINIMAL}[fsck]\n${fsck}\n`, { source: 'test.conf', cpus: 8, realpath: false, cwd: '/cwd' });
}

function configErrorAt(t: import('ava').ExecutionContext, fsck: string, key: string): void {
  const err = t.throws(() => parse(fsck));
  t.true(isBundlemirrorError(err) && err.code === 'E_CONFIG' && err.exitStatus === 2, String(err));
  t.true((err as Error).message.includes(key), (err as Error).message);
}

test("grokmirror's [fsck] keys are read with their meaning", (t) => {
  const c = parse(
    [
      'frequency = 14',
      'ignore_errors = notice:',
      '                missingTaggerEntry',
      'reclone_on_errors = missing blob',
      '                    broken link',
      'repack = yes',
      'extra_repack_flags = --threads=2',
      'extra_repack_flags_full = --window=250 --depth=50',
      'commitgraph = no',
    ].join('\n'),
  );
  t.like(c.fsck, {
    frequencyDays: 14,
    ignoreErrors: ['notice:', 'missingTaggerEntry'],
    recloneOnErrors: ['missing blob', 'broken link'],
    repack: true,
    extraRepackFlags: ['--threads=2'],
    extraRepackFlagsFull: ['--window=250', '--depth=50'],
    commitgraph: false,
  });
  t.deepEqual(
    c.warnings.filter((w) => w.section === 'fsck'),
    [],
  );
});

test('without [fsck]: every 30 days, every problem re-cloned, no repack unless asked', (t) => {
  const c = parsePullConfig(MINIMAL, { source: 'test.conf', cpus: 8, realpath: false, cwd: '/cwd' });
  t.like(c.fsck, {
    frequencyDays: 30,
    recloneOnErrors: null,
    repack: false,
    fullRepackEvery: 10,
    commitgraph: true,
    connectivityOnly: false,
  });
  t.deepEqual(c.fsck.reportHook, []);
});

test('a near miss of an [fsck] key stops with E_CONFIG naming the key meant', (t) => {
  configErrorAt(t, 'frequncy = 7', 'frequency');
  configErrorAt(t, 'ignore_error = notice:', 'ignore_errors');
  configErrorAt(t, 'report_hok = /bin/true', 'report_hook');
});

test('invalid values are E_CONFIG', (t) => {
  configErrorAt(t, 'frequency = 0', 'frequency');
  configErrorAt(t, 'repack = often', 'repack');
  configErrorAt(t, 'extra_repack_flags = window=5', 'extra_repack_flags');
  configErrorAt(t, "report_hook = /bin/echo 'unclosed", 'report_hook');
});

test('mail settings warn (shown without -v) and name report_hook; settings that do not apply are noted', (t) => {
  const c = parse('report_to = root\nreport_mailhost = localhost\nstatusfile = /var/lib/fsck.js\nprecious = yes\n');
  const kinds = Object.fromEntries(c.warnings.filter((w) => w.section === 'fsck').map((w) => [w.key, w.kind]));
  t.deepEqual(kinds, { report_to: 'replaced', report_mailhost: 'replaced', statusfile: 'unused', precious: 'unused' });
  t.true(c.warnings.find((w) => w.key === 'report_to')!.message.includes('report_hook'));
});
