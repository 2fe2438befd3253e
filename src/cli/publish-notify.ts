/**
 * `publish --notify URL... --notify-token-file FILE`: after the publish,
 * tell the replica daemons which repositories changed. Command-line
 * mistakes (a bad URL, no token file given) stop before anything is
 * published; everything that can go wrong later (unreadable token, a
 * replica down or refusing) is printed and never changes publish's exit
 * status: the replicas pick the change up at their next refresh anyway.
 */
import { BundlemirrorError } from '../errors.js';
import { checkNotifyUrl, notifyReplicas, readNotifyTokenFile } from '../origin/notify.js';

export type Notifier = (changed: readonly string[], quiet: boolean) => Promise<void>;

/** Checks the flags now; returns what to call after the publish, or null without --notify. */
export function notifierFor(urls: readonly string[], tokenFile: string | undefined): Notifier | null {
  if (urls.length === 0) {
    if (tokenFile !== undefined)
      throw new BundlemirrorError('E_USAGE', '--notify-token-file needs at least one --notify URL');
    return null;
  }
  const checked = urls.map(checkNotifyUrl);
  if (tokenFile === undefined) {
    throw new BundlemirrorError('E_USAGE', '--notify needs --notify-token-file', {
      hint: 'the file holds the token the replicas have in [bundlemirror] notify_token_file',
    });
  }
  return async (changed, quiet) => {
    if (changed.length === 0) return;
    let token: string;
    try {
      token = await readNotifyTokenFile(tokenFile, (m) => process.stderr.write(`bundlemirror: warning: ${m}\n`));
    } catch (err) {
      process.stderr.write(
        `bundlemirror: notify: ${err instanceof BundlemirrorError ? err.describe() : String(err)}; no replica was notified\n`,
      );
      return;
    }
    const what = changed.length === 1 ? changed[0]! : `${changed.length} repositories`;
    for (const a of await notifyReplicas({ urls: checked, token, repos: changed })) {
      if (a.ok && !quiet) process.stderr.write(`notified ${a.url} of ${what} (${a.status}, ${a.ms} ms)\n`);
      if (!a.ok)
        process.stderr.write(
          `bundlemirror: notify ${a.url} of ${what} failed: ${a.error} (that replica picks the change up at its next refresh)\n`,
        );
    }
  };
}
