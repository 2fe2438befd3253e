/**
 * Scenario 6: `serve` against Debian's nginx on the same published tree.
 * One large Range download with curl (throughput), then rounds of 200
 * concurrent Range requests at seeded offsets from a node client (throughput,
 * latency, errors: every answer must be a 206 of exactly the asked length).
 */
import { execFile } from 'node:child_process';
import { request, Agent } from 'node:http';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { addRow, type BenchContext } from '../lib/context.js';
import { prng } from '../lib/data.js';
import { median, percentile } from '../lib/report.js';
import { startNginx, type Running } from '../lib/servers.js';

function curlRange(url: string, from: number): Promise<{ bytes: number; seconds: number; status: number }> {
  return new Promise((resolve, reject) => {
    execFile(
      'curl',
      ['-s', '-o', '/dev/null', '-r', `${from}-`, '-w', '%{size_download} %{time_total} %{http_code}', url],
      { timeout: 300_000 },
      (err, stdout) => {
        if (err) return reject(err);
        const [b, t, c] = stdout.trim().split(' ');
        resolve({ bytes: Number(b), seconds: Number(t), status: Number(c) });
      },
    );
  });
}

interface RoundResult {
  wallMs: number;
  latencies: number[];
  bytes: number;
  errors: number;
}

function rangeRound(
  base: string,
  path: string,
  fileSize: number,
  n: number,
  len: number,
  seed: number,
): Promise<RoundResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: n });
  const rnd = prng(seed);
  const started = performance.now();
  const one = (): Promise<{ ms: number; bytes: number; ok: boolean }> =>
    new Promise((resolve) => {
      const start = Math.floor(rnd() * Math.max(1, fileSize - len));
      const end = Math.min(fileSize, start + len) - 1;
      const t = performance.now();
      const req = request(
        `${base}${path}`,
        { agent, headers: { range: `bytes=${start}-${end}` }, timeout: 60_000 },
        (res) => {
          let got = 0;
          res.on('data', (c: Buffer) => (got += c.length));
          res.on('end', () =>
            resolve({
              ms: performance.now() - t,
              bytes: got,
              ok:
                res.statusCode === 206 &&
                got === end - start + 1 &&
                res.headers['content-range'] === `bytes ${start}-${end}/${fileSize}`,
            }),
          );
          res.on('error', () => resolve({ ms: performance.now() - t, bytes: got, ok: false }));
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => resolve({ ms: performance.now() - t, bytes: 0, ok: false }));
      req.end();
    });
  return Promise.all(Array.from({ length: n }, one)).then((rs) => {
    agent.destroy();
    return {
      wallMs: performance.now() - started,
      latencies: rs.map((r) => r.ms),
      bytes: rs.reduce((s, r) => s + r.bytes, 0),
      errors: rs.filter((r) => !r.ok).length,
    };
  });
}

export async function serving(ctx: BenchContext): Promise<void> {
  const o = ctx.origin!;
  const dir = join(o.out, ...o.bigPath.slice(1).split('/'));
  const sizes = await Promise.all(
    (await readdir(dir))
      .filter((f) => f.endsWith('.bundle'))
      .map(async (f) => ({ f, size: (await stat(join(dir, f))).size })),
  );
  const biggest = sizes.sort((a, b) => b.size - a.size)[0]!;
  const path = `${o.bigPath}/${biggest.f}`;
  const nginx = await startNginx(o.out, join(ctx.work, 'nginx'));
  try {
    const servers: [string, Running][] = [
      ['serve', o.serve],
      ['nginx', nginx],
    ];
    const large: Record<string, number[]> = { serve: [], nginx: [] };
    const conc: Record<string, RoundResult[]> = { serve: [], nginx: [] };
    const rounds = Math.max(ctx.reps, 2);
    for (let i = 0; i < rounds; i++) {
      for (const [name, srv] of i % 2 ? [...servers].reverse() : servers) {
        // start a little past 0 so it is a real 206 resume, as a replica sends it
        const r = await curlRange(`${srv.url}${path}`, 1000);
        if (r.status !== 206 || r.bytes !== biggest.size - 1000)
          throw new Error(`${name}: large Range download got ${r.status}, ${r.bytes} bytes`);
        large[name]!.push(r.bytes / r.seconds / 1e6);
        // warm-up round discarded: first connections, JIT
        if (i === 0)
          await rangeRound(srv.url, path, biggest.size, ctx.sizes.concurrentRanges, ctx.sizes.rangeBytes, 99);
        conc[name]!.push(
          await rangeRound(srv.url, path, biggest.size, ctx.sizes.concurrentRanges, ctx.sizes.rangeBytes, 1000 + i),
        );
      }
    }
    const bigMB = `${(biggest.size / 2 ** 20).toFixed(0)} MiB`;
    const ls = median(large.serve!)!;
    const ln = median(large.nginx!)!;
    addRow(ctx, {
      scenario: '6 Serving',
      measure: `one ${bigMB} Range download (curl), throughput`,
      unit: 'MB/s',
      ours: ls,
      theirsLabel: 'nginx (Debian defaults: sendfile, worker per core)',
      theirs: ln,
      target: '>= 0.5x nginx',
      met: ls / ln >= 0.5,
      samples: { ours: large.serve!, theirs: large.nginx! },
    });
    const tput = (rs: RoundResult[]) => median(rs.map((r) => r.bytes / (r.wallMs / 1000) / 1e6))!;
    const ts = tput(conc.serve!);
    const tn = tput(conc.nginx!);
    const n = ctx.sizes.concurrentRanges;
    const rl = `${n} concurrent ${(ctx.sizes.rangeBytes / 1024).toFixed(0)} KiB Range requests`;
    const errs = (rs: RoundResult[]) => rs.reduce((s, r) => s + r.errors, 0);
    addRow(ctx, {
      scenario: '6 Serving',
      measure: `${rl}, throughput`,
      unit: 'MB/s',
      ours: ts,
      theirsLabel: 'nginx',
      theirs: tn,
      target: '>= 0.5x nginx, no errors',
      met: ts / tn >= 0.5 && errs(conc.serve!) === 0,
      note: `errors: serve ${errs(conc.serve!)}, nginx ${errs(conc.nginx!)}`,
    });
    const lat = (rs: RoundResult[], p: number) => median(rs.map((r) => percentile(r.latencies, p)!));
    addRow(ctx, {
      scenario: '6 Serving',
      measure: `${rl}, latency p50`,
      unit: 'ms',
      ours: lat(conc.serve!, 50),
      theirsLabel: 'nginx',
      theirs: lat(conc.nginx!, 50),
    });
    addRow(ctx, {
      scenario: '6 Serving',
      measure: `${rl}, latency p99`,
      unit: 'ms',
      ours: lat(conc.serve!, 99),
      theirsLabel: 'nginx',
      theirs: lat(conc.nginx!, 99),
    });
  } finally {
    await nginx.stop();
  }
}
