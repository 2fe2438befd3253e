/**
 * The options of an s3:// target, shared by publish and gc. Apart from
 * publish-target.ts, which publish's hook path loads without commander.
 */
import { Option, type Command } from 'commander';

export function addStoreOptions(cmd: Command): Command {
  return cmd
    .option(
      '--state <dir>',
      'for an s3:// target: the local copy of the tree and what the store holds (default: one directory per URL under $XDG_STATE_HOME/bundlemirror/publish)',
    )
    .option(
      '--s3-path-style',
      'for an s3:// target: path-style URLs (endpoint/bucket/key), as MinIO, Ceph and most self-hosted stores need',
    )
    .addOption(
      new Option(
        '--s3-part-size <bytes>',
        'for an s3:// target: files larger than this go up in resumable parts of this size (S3 needs 5 MiB or more)',
      ).default(String(64 << 20), '67108864 = 64 MiB'),
    );
}
