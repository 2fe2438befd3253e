/**
 * `publish` as one CommonJS file (dist/cli/publish.cjs, scripts/build.mjs)
 * that bin/bundlemirror compiles with V8's code cache, for the same reason
 * as pull-cached.ts: a post-receive hook's publish of the one repository
 * pushed to is mostly start-up. The launcher hands any command line
 * readArgv does not read to the ES module build, as main.ts would.
 */
import type { PublishArgs } from './publish-argv.js';
import { runPublish } from './publish-run.js';

export { publishArgsFromArgv as readArgv } from './publish-argv.js';
export { fail } from './failure.js';

export function run({ repos, flags }: PublishArgs): Promise<void> {
  return runPublish(repos, flags);
}
