/**
 * The demo's on-demand part: a repository only reachable as plain smart
 * HTTP (no bundles published for it) is cloned with `clone --via` through
 * the on-demand service, over a link that breaks; the clone's origin is the
 * upstream itself.
 */
import { join } from 'node:path';
import { cloneRepo } from '../clone/clone.js';
import { git } from '../git/exec.js';
import { askService, describeJob } from '../on-demand/client.js';
import { OnDemandService } from '../on-demand/service.js';
import { startServer } from '../server/server.js';
import { startFaultProxy } from '../faults/fault-proxy.js';
import { formatBytes } from '../format/bytes.js';

export async function demoOnDemand(opts: {
  work: string;
  upstream: string;
  cutEvery: number;
  say: (line?: string) => void;
}): Promise<boolean> {
  const { say } = opts;
  const service = await OnDemandService.open({ dir: join(opts.work, 'on-demand'), allow: ['http://127.0.0.1:*/*'] });
  const server = await startServer({ bundles: null, port: 0, log: false, onDemand: service });
  const link = await startFaultProxy({
    upstream: { host: '127.0.0.1', port: server.port },
    cutAfterBytes: opts.cutEvery,
  });
  try {
    const dir = join(opts.work, 'via-clone');
    say(
      `   serve --on-demand ${join(opts.work, 'on-demand').replace(process.cwd() + '/', '')} --allow 'http://127.0.0.1:*/*'   (page: ${server.url}/on-demand)`,
    );
    say(`   bundlemirror clone --via ${link.url('')} ${opts.upstream} ${dir.replace(process.cwd() + '/', '')}`);
    let last = '';
    const mirror = await askService(link.url(''), opts.upstream, {
      maxPollMs: 200,
      onUpdate: (job) => {
        const line = describeJob(job);
        if (line !== last) say(`   ${line}`);
        last = line;
      },
    });
    const r = await cloneRepo({ indexUrl: mirror.indexUrl, repo: mirror.path, gitUrl: opts.upstream }, dir);
    const origin = (await git(['config', 'remote.origin.url'], { cwd: dir })).stdout.toString().trim();
    say(
      `   cloned from ${r.bundles} bundle(s) (${formatBytes(r.bytesDownloaded)}), the link was cut ${link.stats.cuts} times; origin = ${origin}`,
    );
    return r.fetched && origin === opts.upstream;
  } finally {
    await link.close();
    await server.close();
    await service.close({ abort: true });
  }
}
