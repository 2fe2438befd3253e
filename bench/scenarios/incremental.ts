/**
 * Scenario 4 (and 5b): one commit pushed to the large repository, published
 * by the post-receive hook (`publish REPO`), then brought to the replica the
 * bootstrap left: ours through an incremental bundle, theirs with `git
 * fetch` into the mirrors `git clone --mirror` made (git:// and smart HTTP).
 * Bytes are counted by a pass-through proxy (no faults) in front of each
 * server, headers included.
 */
import { join } from 'node:path';
import { startFaultProxy } from '../../test/support/fault-proxy.js';
import { addRow, writeReplicaConfig, type BenchContext } from '../lib/context.js';
import { pushCommit } from '../lib/data.js';
import { bundlemirror, gitTimed } from '../lib/proc.js';
import { median } from '../lib/report.js';

export async function incremental(ctx: BenchContext): Promise<void> {
  const o = ctx.origin!;
  const httpProxy = await startFaultProxy({ upstream: { host: '127.0.0.1', port: o.serve.port } });
  const gitProxy = await startFaultProxy({ upstream: { host: '127.0.0.1', port: o.daemon.port } });
  try {
    const conf = await writeReplicaConfig(
      join(ctx.work, 'replica-incremental.conf'),
      ctx.replica!.toplevel,
      httpProxy.url(''),
    );
    const s = {
      hook: [] as number[],
      ours: [] as number[],
      oursBytes: [] as number[],
      daemon: [] as number[],
      daemonBytes: [] as number[],
      http: [] as number[],
      httpBytes: [] as number[],
    };
    for (let i = 0; i < ctx.reps; i++) {
      await pushCommit(o.bigDir, {
        seed: `incremental-${i}`,
        bytes: ctx.sizes.pushBytes,
        time: 1_800_000_000 + i * 60,
      });
      const hook = await bundlemirror(['publish', '--quiet', '--toplevel', o.toplevel, '--out', o.out, o.bigDir], {
        timeoutMs: 300_000,
      });
      s.hook.push(hook.wallMs);

      let b = httpProxy.stats.bytesDownstream;
      const ours = await bundlemirror(['pull', '-c', conf, '--no-progress', '-q'], { timeoutMs: 300_000 });
      s.ours.push(ours.wallMs);
      s.oursBytes.push(httpProxy.stats.bytesDownstream - b);

      b = gitProxy.stats.bytesDownstream;
      const d = await gitTimed(
        [
          '--git-dir',
          ctx.mirrors!.daemon,
          'fetch',
          '--quiet',
          '--prune',
          `git://127.0.0.1:${gitProxy.port}${o.bigPath}`,
          '+refs/*:refs/*',
        ],
        { timeoutMs: 300_000 },
      );
      s.daemon.push(d.wallMs);
      s.daemonBytes.push(gitProxy.stats.bytesDownstream - b);

      b = httpProxy.stats.bytesDownstream;
      const h = await gitTimed(
        [
          '--git-dir',
          ctx.mirrors!.http,
          'fetch',
          '--quiet',
          '--prune',
          httpProxy.url(`/git${o.bigPath}`),
          '+refs/*:refs/*',
        ],
        { timeoutMs: 300_000 },
      );
      s.http.push(h.wallMs);
      s.httpBytes.push(httpProxy.stats.bytesDownstream - b);
    }
    const push = `${(ctx.sizes.pushBytes / 1024).toFixed(0)} KiB commit`;
    addRow(ctx, {
      scenario: '4 Incremental',
      measure: `bytes downloaded, one ${push}`,
      unit: 'bytes',
      ours: median(s.oursBytes),
      theirsLabel: '`git fetch` git://',
      theirs: median(s.daemonBytes),
      note: 'ours: manifest + index.json + bundle',
      samples: { ours: s.oursBytes, theirs: s.daemonBytes },
    });
    addRow(ctx, {
      scenario: '4 Incremental',
      measure: `bytes downloaded, one ${push}`,
      unit: 'bytes',
      ours: median(s.oursBytes),
      theirsLabel: '`git fetch` smart HTTP',
      theirs: median(s.httpBytes),
      samples: { ours: s.oursBytes, theirs: s.httpBytes },
    });
    addRow(ctx, {
      scenario: '4 Incremental',
      measure: 'wall',
      unit: 'ms',
      ours: median(s.ours),
      theirsLabel: '`git fetch` git://',
      theirs: median(s.daemon),
      note: 'CLI incl. start-up',
      samples: { ours: s.ours, theirs: s.daemon },
    });
    addRow(ctx, {
      scenario: '4 Incremental',
      measure: 'wall',
      unit: 'ms',
      ours: median(s.ours),
      theirsLabel: '`git fetch` smart HTTP',
      theirs: median(s.http),
      samples: { ours: s.ours, theirs: s.http },
    });
    const hook = median(s.hook)!;
    addRow(ctx, {
      scenario: '5 Publish',
      measure: `hook publish of one ${push} (1-repository toplevel)`,
      unit: 'ms',
      ours: hook,
      theirsLabel: '',
      theirs: null,
      target: '< 1 s',
      met: hook < 1000,
      note: 'CLI incl. start-up',
      samples: { ours: s.hook, theirs: [] },
    });
  } finally {
    await httpProxy.close();
    await gitProxy.close();
  }
}
