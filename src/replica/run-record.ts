/**
 * What `status` knows about pulls beyond state.json: the last run (when,
 * how it ended, its error), so "the origin is quiet" (a run that found the
 * manifest unchanged a minute ago) reads differently from "the origin is
 * unreachable" (a run that could not fetch it); and, while a pull runs, the
 * files it is downloading now. The running pull writes `progress.json`
 * every couple of seconds (temp file + rename, so a reader never sees half
 * of it) and removes it when done; `status` only reads, no lock needed.
 */
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as z from 'zod';
import { isBundlemirrorError, isInterruption } from '../errors.js';
import { printable } from '../format/untrusted.js';
import { tempPathFor } from '../fs/atomic.js';
import type { DownloadProgress } from '../transfer/progress.js';
import { stateDir } from './paths.js';

const LAST_RUN = 'last-run.json';
const PROGRESS = 'progress.json';
/** How often the progress file is rewritten while bytes arrive. */
const PROGRESS_EVERY_MS = 2_000;

export const LastRunSchema = z.object({
  startedAt: z.string(),
  finishedAt: z.string(),
  /**
   * `ok`: every repository synced (or nothing to do); `unchanged`: the manifest
   * answered 304; `failed`: some repositories failed; `error`: the run itself
   * failed (manifest unreachable, say); `interrupted`: Ctrl-C or SIGTERM.
   */
  result: z.enum(['ok', 'unchanged', 'failed', 'error', 'interrupted']),
  /** The run's own error, or the first repository's. */
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  failedRepositories: z.number().int().nonnegative(),
  bytesDownloaded: z.number().nonnegative(),
  /** Per mirror host of the published tree (`[remote] mirrors`): what it served in this run. */
  sources: z
    .array(
      z.object({
        url: z.string(),
        files: z.number().int(),
        bytes: z.number(),
        failures: z.number().int(),
        lastError: z.string().nullable(),
      }),
    )
    .default([]),
  /** Which host served each repository's files in this run (manifest path -> tree root). */
  servedBy: z.record(z.string(), z.string()).default({}),
});
export type LastRun = z.infer<typeof LastRunSchema>;

export const DownloadingSchema = z.object({
  repo: z.string(),
  file: z.string(),
  received: z.number(),
  total: z.number(),
  rate: z.number(),
  resumedFrom: z.number(),
  /** The tree root it comes from, when mirrors are configured. */
  source: z.string().nullable().default(null),
});
export type Downloading = z.infer<typeof DownloadingSchema>;

export const ProgressFileSchema = z.object({
  pid: z.number().int(),
  startedAt: z.string(),
  updatedAt: z.string(),
  downloads: z.array(DownloadingSchema),
});
export type ProgressFile = z.infer<typeof ProgressFileSchema>;

/** Kept by a running pull: feeds progress.json, then writes last-run.json. */
export class RunRecorder {
  private readonly startedAt = new Date().toISOString();
  private readonly active = new Map<string, Downloading>();
  private lastWrite = 0;
  private writing: Promise<void> = Promise.resolve();
  private dirty = false;
  private closed = false;

  constructor(private readonly toplevel: string) {}

  progress(repo: string, file: string, p: DownloadProgress, source: string | null = null): void {
    if (this.closed) return;
    const key = `${repo}\0${file}`;
    if (p.received >= p.total) this.active.delete(key);
    else
      this.active.set(key, {
        repo,
        file,
        received: p.received,
        total: p.total,
        rate: p.rate,
        resumedFrom: p.resumedFrom,
        source,
      });
    this.dirty = true;
    if (Date.now() - this.lastWrite >= PROGRESS_EVERY_MS) this.flush();
  }

  private flush(): void {
    if (!this.dirty || this.closed) return;
    this.dirty = false;
    this.lastWrite = Date.now();
    const body: ProgressFile = {
      pid: process.pid,
      startedAt: this.startedAt,
      updatedAt: new Date().toISOString(),
      downloads: [...this.active.values()],
    };
    const file = join(stateDir(this.toplevel), PROGRESS);
    // best effort: a progress file that cannot be written must never fail a pull
    this.writing = this.writing.then(() => writeReplacing(file, JSON.stringify(body) + '\n')).catch(() => {});
  }

  async finish(
    outcome: {
      report?: { manifestUnchanged: boolean; failed: { code: string; message: string }[]; bytesDownloaded: number };
      error?: unknown;
    },
    sources: LastRun['sources'] = [],
    servedBy: LastRun['servedBy'] = {},
  ): Promise<void> {
    this.closed = true;
    await this.writing;
    await rm(join(stateDir(this.toplevel), PROGRESS), { force: true }).catch(() => {});
    const r = outcome.report;
    const err = outcome.error;
    const record: LastRun = {
      startedAt: this.startedAt,
      finishedAt: new Date().toISOString(),
      result:
        err !== undefined
          ? isInterruption(err)
            ? 'interrupted'
            : 'error'
          : r?.failed.length
            ? 'failed'
            : r?.manifestUnchanged
              ? 'unchanged'
              : 'ok',
      error:
        err !== undefined && !isInterruption(err)
          ? {
              code: isBundlemirrorError(err) ? err.code : 'E_INTERNAL',
              message: printable(err instanceof Error ? err.message : String(err)),
            }
          : r?.failed[0]
            ? { code: r.failed[0].code, message: printable(r.failed[0].message) }
            : null,
      failedRepositories: r?.failed.length ?? 0,
      bytesDownloaded: r?.bytesDownloaded ?? 0,
      sources,
      servedBy,
    };
    await writeReplacing(join(stateDir(this.toplevel), LAST_RUN), JSON.stringify(record, null, 1) + '\n').catch(
      () => {},
    );
  }
}

async function writeReplacing(file: string, text: string): Promise<void> {
  const tmp = tempPathFor(file);
  await writeFile(tmp, text);
  await rename(tmp, file);
}

export async function readLastRun(toplevel: string): Promise<LastRun | null> {
  return readJson(join(stateDir(toplevel), LAST_RUN), LastRunSchema);
}

/** The downloads of the pull running now; null when none runs (or its progress file is from a process that is gone). */
export async function readProgress(toplevel: string): Promise<ProgressFile | null> {
  const p = await readJson(join(stateDir(toplevel), PROGRESS), ProgressFileSchema);
  if (!p) return null;
  try {
    process.kill(p.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return null;
  }
  return p;
}

async function readJson<T>(file: string, schema: z.ZodType<T>): Promise<T | null> {
  try {
    const parsed = schema.safeParse(JSON.parse(await readFile(file, 'utf8')));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}
