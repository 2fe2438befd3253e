/**
 * Ctrl-C and SIGTERM abort the work through its AbortSignal instead of
 * killing the process: downloads keep their partial files, locks are
 * released, and the next run continues where this one stopped.
 */
export async function untilInterrupted<T>(work: (signal: AbortSignal) => Promise<T>, message = 'interrupted'): Promise<T> {
  const abort = new AbortController();
  const stop = () => abort.abort(new Error(message));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    return await work(abort.signal);
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}
