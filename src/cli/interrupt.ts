/**
 * Ctrl-C and SIGTERM abort the work through its AbortSignal instead of
 * killing the process: downloads keep their partial files, locks are
 * released, nothing is recorded as failing, and the next run continues
 * where this one stopped. The work ends with an InterruptedError (exit 130
 * or 143); a second signal while it winds down ends the process at once.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InterruptedError, isInterruption } from '../errors.js';
import { bundleCacheDir, partialDir } from '../replica/paths.js';

/** Where an interrupted pull keeps its work: partial downloads and verified bundles not yet applied. */
export function keptDirs(toplevel: string): string[] {
  return [partialDir(toplevel), bundleCacheDir(toplevel)];
}

export interface InterruptOptions {
  /** Directories whose files are what an interrupted run keeps (partials, verified bundles). */
  keptIn?: () => string[];
  /** What the user runs to resume, e.g. "rerun clone with the same arguments". */
  rerun?: string;
}

export async function untilInterrupted<T>(
  work: (signal: AbortSignal) => Promise<T>,
  opts: InterruptOptions = {},
): Promise<T> {
  const abort = new AbortController();
  const onInt = () => abort.abort(new InterruptedError('SIGINT'));
  const onTerm = () => abort.abort(new InterruptedError('SIGTERM'));
  process.once('SIGINT', onInt);
  process.once('SIGTERM', onTerm);
  try {
    const result = await work(abort.signal);
    // work that finished anyway (the signal came after its last step) stands
    return result;
  } catch (err) {
    const stopped = abort.signal.aborted ? (abort.signal.reason as InterruptedError) : isInterruption(err) ? err : null;
    if (!stopped) throw err;
    stopped.keptBytes = opts.keptIn ? await bytesIn(opts.keptIn()) : null;
    if (opts.rerun) stopped.rerun = opts.rerun;
    throw stopped;
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  }
}

/** Total size of the regular files directly in these directories (missing ones count 0). */
export async function bytesIn(dirs: string[]): Promise<number> {
  let total = 0;
  for (const dir of dirs) {
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const st = await stat(join(dir, name)).catch(() => null);
      if (st?.isFile()) total += st.size;
    }
  }
  return total;
}

/** Resolves with the first of these signals; the listeners are removed, so the next one has its default effect. */
export function firstSignal(signals: NodeJS.Signals[]): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const handlers = signals.map((sig) => {
      const handler = () => {
        for (const [s, h] of handlers) process.off(s, h);
        resolve(sig);
      };
      process.on(sig, handler);
      return [sig, handler] as const;
    });
  });
}
