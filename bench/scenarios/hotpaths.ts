/**
 * Where a bootstrap spends its time, piece by piece, in this process: the
 * download path alone (receive, hash, write, fsync; `bytesHashedFromDisk`
 * must be 0: no byte read twice) against the disk's own sequential write
 * speed, and `git bundle unbundle` alone against a bare `git index-pack`.
 */
import { open, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { addRow, type BenchContext } from '../lib/context.js';
import { fastSeededBytes, runGit } from '../lib/data.js';
import { gitTimed } from '../lib/proc.js';
import { median } from '../lib/report.js';
import { downloadFile } from '../../src/transfer/download.js';

/** Sequential write + fsync of `size` bytes in 1 MiB writes: the disk's speed as we use it. */
async function diskWrite(file: string, size: number): Promise<number> {
  const chunk = fastSeededBytes('disk', 1 << 20);
  const t = performance.now();
  const fh = await open(file, 'w');
  for (let off = 0; off < size; off += chunk.length) await fh.write(chunk, 0, Math.min(chunk.length, size - off));
  await fh.sync();
  await fh.close();
  return performance.now() - t;
}

export async function hotpaths(ctx: BenchContext): Promise<void> {
  const o = ctx.origin!;
  const dir = join(o.out, ...o.bigPath.slice(1).split('/'));
  const names = (await readdir(dir)).filter((n) => n.endsWith('.bundle'));
  const sized = await Promise.all(names.map(async (n) => ({ n, size: (await stat(join(dir, n))).size })));
  const { n: name, size } = sized.sort((a, b) => b.size - a.size)[0]!;
  const dl: number[] = [];
  const disk: number[] = [];
  const unb: number[] = [];
  const idx: number[] = [];
  let readBack = 0;
  const scratch = join(ctx.work, 'hotpaths');
  for (let i = 0; i < ctx.reps; i++) {
    await rm(scratch, { recursive: true, force: true });
    const t = performance.now();
    const r = await downloadFile({
      url: `${o.serve.url}${o.bigPath}/${name}`,
      dest: join(scratch, 'b.bundle'),
      expectedSize: size,
      sha256: name.slice(0, 64),
      partialDir: join(scratch, 'partial'),
    });
    dl.push(performance.now() - t);
    readBack += r.bytesHashedFromDisk;
    disk.push(await diskWrite(join(scratch, 'disk.bin'), size));
    await rm(join(scratch, 'disk.bin'));

    await runGit(['init', '--bare', '--quiet', join(scratch, 'u.git')]);
    unb.push(
      (
        await gitTimed(['--git-dir', join(scratch, 'u.git'), 'bundle', 'unbundle', join(scratch, 'b.bundle')], {
          timeoutMs: 600_000,
        })
      ).wallMs,
    );
    const packs = (await readdir(join(o.bigDir, 'objects', 'pack'))).filter((p) => p.endsWith('.pack'));
    if (packs.length === 1) {
      await runGit(['init', '--bare', '--quiet', join(scratch, 'i.git')]);
      // the same work as unbundle without the bundle header: what `git clone` runs on its side
      const r2 = await gitTimed(['--git-dir', join(scratch, 'i.git'), 'index-pack', '--stdin', '--fix-thin'], {
        timeoutMs: 600_000,
        stdinFile: join(o.bigDir, 'objects', 'pack', packs[0]!),
      });
      idx.push(r2.wallMs);
    }
  }
  await rm(scratch, { recursive: true, force: true });
  const mb = size / 1e6;
  addRow(ctx, {
    scenario: 'Hot path',
    measure: `download ${(size / 2 ** 20).toFixed(0)} MiB bundle from serve: receive + sha256 + write + fsync, throughput`,
    unit: 'MB/s',
    ours: mb / (median(dl)! / 1000),
    theirsLabel: 'disk: sequential 1 MiB writes + fsync',
    theirs: mb / (median(disk)! / 1000),
    note: `bytes read back to hash: ${readBack}`,
  });
  addRow(ctx, {
    scenario: 'Hot path',
    measure: 'unbundle the base bundle, wall',
    unit: 'ms',
    ours: median(unb),
    theirsLabel: '`git index-pack --stdin` of the same pack',
    theirs: median(idx),
  });
  ctx.facts.hotpaths = {
    size,
    downloadMs: dl,
    diskMs: disk,
    unbundleMs: unb,
    indexPackMs: idx,
    bytesHashedFromDisk: readBack,
  };
}
