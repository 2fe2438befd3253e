/**
 * `pull` as one CommonJS file (dist/cli/pull.cjs, scripts/build.mjs) that
 * bin/bundlemirror compiles with V8's code cache. A cron'd poll is mostly
 * start-up: compiling the command's JavaScript again on every run cost more
 * than loading it, and node 20 keeps no code cache for ES modules. The
 * launcher hands any command line readArgv does not read to the ES module
 * build, as main.ts would. Each cached command exports the same three names.
 */
export { pullFlagsFromArgv as readArgv } from './pull-argv.js';
export { runPull as run } from './pull.js';
export { fail } from './failure.js';
