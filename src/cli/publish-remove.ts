/** `publish -x PATH...`: the summary of taking deleted repositories out of the manifest. */
import { BundlemirrorError } from '../errors.js';
import { removeFromManifest, type RemoveOptions } from '../origin/remove.js';

export async function removeRepositories(paths: string[], opts: Omit<RemoveOptions, 'paths'>): Promise<void> {
  if (paths.length === 0)
    throw new BundlemirrorError('E_USAGE', '-x/--remove needs the repositories to take out of the manifest', {
      hint: 'publish -x /srv/git/pub/gone.git (its directory in the toplevel) or publish -x /pub/gone.git',
    });
  const r = await removeFromManifest({ ...opts, paths });
  const extra = [
    r.symlinks.length ? `${r.symlinks.length} symlink(s)` : '',
    r.unreferenced.length ? `${r.unreferenced.length} reference(s) cleared` : '',
  ].filter(Boolean);
  process.stdout.write(
    `removed ${r.removed.length} from the manifest${extra.length ? ` (${extra.join(', ')})` : ''}; manifest ${r.manifestWritten ? 'written' : 'unchanged'}; ` +
      'their files go at gc after the grace period\n',
  );
}
