/**
 * Publishing into object storage: a full publish of the large repository
 * into s3rver on 127.0.0.1 (path-style, through a pass-through proxy that
 * counts the bytes sent to the store, headers included) against a full
 * publish into a directory; then one commit pushed and published by the
 * hook (`publish REPO`): the bytes it sends to the store against the bytes
 * of the files that commit added or changed in the tree.
 */
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import S3rver from 's3rver';
import { startFaultProxy } from '../../test/support/fault-proxy.js';
import { addRow, type BenchContext } from '../lib/context.js';
import { pushCommit } from '../lib/data.js';
import { bundlemirror, cleanEnv } from '../lib/proc.js';
import { median } from '../lib/report.js';

const BUCKET = 'bench';

export async function s3(ctx: BenchContext): Promise<void> {
  const o = ctx.origin!;
  const root = join(ctx.work, 's3');
  await mkdir(root, { recursive: true });
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    directory: join(root, 'store'),
    silent: true,
    configureBuckets: [{ name: BUCKET, configs: [] }],
  });
  const { port } = await server.run();
  const proxy = await startFaultProxy({ upstream: { host: '127.0.0.1', port } });
  const env = cleanEnv({
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_REGION: 'us-east-1',
    AWS_ENDPOINT_URL: proxy.url(''),
    AWS_CONFIG_FILE: join(root, 'none'),
    AWS_SHARED_CREDENTIALS_FILE: join(root, 'none'),
    AWS_EC2_METADATA_DISABLED: 'true',
  });
  try {
    const toStore: number[] = [];
    const toDir: number[] = [];
    const fullBytes: number[] = [];
    let state = '';
    let target = '';
    for (let i = 0; i < ctx.reps; i++) {
      state = join(root, `state-${i}`);
      target = `s3://${BUCKET}/full-${i}`;
      const dir = join(root, `dir-${i}`);
      const runStore = async () => {
        const b = proxy.stats.bytesUpstream;
        const r = await bundlemirror(
          ['publish', '--quiet', '--toplevel', o.toplevel, '--bundles', target, '--state', state, '--s3-path-style'],
          { env, timeoutMs: 900_000 },
        );
        toStore.push(r.wallMs);
        fullBytes.push(proxy.stats.bytesUpstream - b);
      };
      const runDir = async () => {
        const r = await bundlemirror(['publish', '--quiet', '--toplevel', o.toplevel, '--bundles', dir], {
          timeoutMs: 900_000,
        });
        toDir.push(r.wallMs);
      };
      if (i % 2 === 0) {
        await runStore();
        await runDir();
      } else {
        await runDir();
        await runStore();
      }
      await rm(dir, { recursive: true, force: true });
    }
    addRow(ctx, {
      scenario: '5 Publish',
      measure: 'full publish of the large repository into S3 (s3rver on 127.0.0.1), wall',
      unit: 'ms',
      ours: median(toStore),
      theirsLabel: 'the same publish into a directory',
      theirs: median(toDir),
      note: `${((median(fullBytes) ?? 0) / 2 ** 20).toFixed(1)} MiB sent to the store`,
      samples: { ours: toStore, theirs: toDir },
    });

    // one commit, published by the hook into the last store
    await pushCommit(o.bigDir, { seed: 's3-push', bytes: ctx.sizes.pushBytes, time: 1_900_000_000 });
    const before = await filesOf(state);
    const b = proxy.stats.bytesUpstream;
    await bundlemirror(
      [
        'publish',
        '--quiet',
        '--toplevel',
        o.toplevel,
        '--bundles',
        target,
        '--state',
        state,
        '--s3-path-style',
        o.bigDir,
      ],
      { env, timeoutMs: 300_000 },
    );
    const sent = proxy.stats.bytesUpstream - b;
    const after = await filesOf(state);
    let changed = 0;
    for (const [rel, f] of after) if (before.get(rel)?.mtimeMs !== f.mtimeMs) changed += f.size;
    addRow(ctx, {
      scenario: '5 Publish',
      measure: 'one-commit push published into S3: bytes sent to the store (HTTP incl. headers)',
      unit: 'bytes',
      ours: sent,
      theirsLabel: 'bytes of the new and changed files in the tree',
      theirs: changed,
      note: 'the new incremental bundle and the documents; nothing already in the store',
    });
  } finally {
    await proxy.close();
    await server.close();
    await rm(root, { recursive: true, force: true });
  }
}

/** Published files (dotfiles are local state) with their size and mtime. */
async function filesOf(tree: string): Promise<Map<string, { size: number; mtimeMs: number }>> {
  const out = new Map<string, { size: number; mtimeMs: number }>();
  async function walk(dir: string, rel: string): Promise<void> {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      if (e.name.startsWith('.')) continue;
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(join(dir, e.name), r);
      else if (e.isFile()) {
        const st = await stat(join(dir, e.name));
        out.set(r, { size: st.size, mtimeMs: st.mtimeMs });
      }
    }
  }
  await walk(tree, '');
  return out;
}
