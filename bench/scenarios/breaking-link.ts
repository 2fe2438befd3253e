/**
 * Scenario 2: bootstrap over a link that cuts every connection after a few
 * MB (test/support/fault-proxy.ts in front of serve). Ours resumes each
 * bundle from the byte where it stopped; `git clone --mirror` over smart
 * HTTP restarts from zero and is retried a bounded number of times.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startFaultProxy } from '../../test/support/fault-proxy.js';
import { addRow, writeReplicaConfig, type BenchContext } from '../lib/context.js';
import { bundlemirror, gitTimed } from '../lib/proc.js';

export async function liveBundleBytes(out: string, repoPath: string): Promise<number> {
  const index = JSON.parse(await readFile(join(out, ...repoPath.slice(1).split('/'), 'index.json'), 'utf8')) as {
    bundles: { size: number; superseded?: string }[];
  };
  return index.bundles.filter((b) => !b.superseded).reduce((n, b) => n + b.size, 0);
}

export async function breakingLink(ctx: BenchContext): Promise<void> {
  const o = ctx.origin!;
  const cut = ctx.sizes.cutEveryBytes;
  const proxy = await startFaultProxy({ upstream: { host: '127.0.0.1', port: o.serve.port }, cutAfterBytes: cut });
  try {
    const bundleBytes = await liveBundleBytes(o.out, o.bigPath);
    const toplevel = join(ctx.work, 'replica-breaking');
    const conf = await writeReplicaConfig(join(ctx.work, 'replica-breaking.conf'), toplevel, proxy.url(''));
    const before = { ...proxy.stats };
    const ours = await bundlemirror(['pull', '-c', conf, '--no-progress', '-q'], {
      timeoutMs: 900_000,
      allowFail: true,
    });
    const wire = proxy.stats.bytesDownstream - before.bytesDownstream;
    const cuts = proxy.stats.cuts - before.cuts;
    const ok = ours.code === 0;
    await rm(toplevel, { recursive: true, force: true });

    // git: every attempt starts from zero; stop at the first success or after the bound
    const attempts: { ok: boolean; bytes: number; ms: number }[] = [];
    for (let i = 0; i < ctx.sizes.gitCloneAttempts; i++) {
      const dir = join(ctx.work, `mirror-breaking-${i}.git`);
      const b0 = proxy.stats.bytesDownstream;
      const r = await gitTimed(['clone', '--quiet', '--mirror', proxy.url(`/git${o.bigPath}`), dir], {
        timeoutMs: 600_000,
        allowFail: true,
      });
      attempts.push({ ok: r.code === 0, bytes: proxy.stats.bytesDownstream - b0, ms: r.wallMs });
      await rm(dir, { recursive: true, force: true });
      if (r.code === 0) break;
    }
    const gitOk = attempts.some((a) => a.ok);
    const gitBytes = attempts.reduce((n, a) => n + a.bytes, 0);
    const gitMs = attempts.reduce((n, a) => n + a.ms, 0);
    const gitNote = gitOk
      ? `finished on attempt ${attempts.length}`
      : `never finished: ${attempts.length} attempts, each cut at ${(cut / 2 ** 20).toFixed(0)} MiB`;
    const label = `cut every ${(cut / 2 ** 20).toFixed(0)} MiB`;
    addRow(ctx, {
      scenario: '2 Breaking link',
      measure: `bytes on the wire / bundle bytes, ${label}`,
      unit: 'x',
      ours: ok ? wire / bundleBytes : null,
      theirsLabel: '`git clone --mirror` smart HTTP, retried',
      theirs: gitOk ? gitBytes / bundleBytes : null,
      target: 'ours <= 1.02',
      met: ok ? wire / bundleBytes <= 1.02 : false,
      note: `ours: ${cuts} cuts survived${ok ? '' : `, FAILED exit ${ours.code}`}; git: ${gitNote}`,
    });
    addRow(ctx, {
      scenario: '2 Breaking link',
      measure: `wall, ${label}`,
      unit: 'ms',
      ours: ok ? ours.wallMs : null,
      theirsLabel: `\`git clone --mirror\`, ${attempts.length} attempt(s)`,
      theirs: gitOk ? gitMs : null,
      note: gitOk
        ? undefined
        : `git spent ${(gitMs / 1000).toFixed(1)} s and ${(gitBytes / 2 ** 20).toFixed(0)} MiB without a clone`,
    });
    ctx.facts.breakingLink = {
      bundleBytes,
      ours: { wire, cuts, wallMs: ours.wallMs, code: ours.code, stderr: ok ? undefined : ours.stderr.slice(-2000) },
      git: attempts,
    };
  } finally {
    await proxy.close();
  }
}
