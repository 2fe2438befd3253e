// Builds the CLI that bin/bundlemirror runs: src/cli/main.ts and everything
// it imports (our modules and the npm packages) bundled by esbuild into
// dist/cli/main.js, with each command and its heavy dependencies (express,
// got, zod, ...) in chunks loaded only when that command runs. One file to
// parse at start instead of hundreds of ES modules to resolve and link is
// most of what makes `bundlemirror --version` cost little more than node.
import { build } from 'esbuild';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
// `--outdir DIR` builds elsewhere (the test that runs the built CLI); the launcher reads dist/
const at = process.argv.indexOf('--outdir');
const outdir = at > 0 && process.argv[at + 1] ? resolve(process.argv[at + 1]) : `${root}dist`;

const REQUIRE =
  "import { createRequire as __bundlemirrorRequire } from 'node:module'; const require = __bundlemirrorRequire(import.meta.url);";

// before esbuild reads a source: a file saved while it builds counts as newer than the build
const builtAt = Date.now();
await rm(outdir, { recursive: true, force: true });
const { metafile } = await build({
  absWorkingDir: root,
  entryPoints: ['src/cli/main.ts'],
  outbase: 'src',
  outdir,
  entryNames: '[dir]/[name]',
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
  metafile: true,
  // CommonJS packages inside an ES module bundle still call require() for node's built-ins
  banner: { js: REQUIRE },
});

// esbuild's runtime chunk is what calls require() (as __require, for the other
// chunks): the banner elsewhere cost every command a createRequire() per chunk
// loaded. A chunk that never names require keeps its line numbers for the source map.
for (const file of Object.keys(metafile.outputs).filter((f) => f.endsWith('.js'))) {
  const path = resolve(root, file);
  const text = await readFile(path, 'utf8');
  if (text.startsWith(`${REQUIRE}\n`) && !/\brequire\b/.test(text.slice(REQUIRE.length)))
    await writeFile(path, text.slice(REQUIRE.length));
}

// every command with a src/cli/COMMAND-cached.ts (pull, publish) once more, as a
// single CommonJS file the launcher compiles with a code cache (src/cli/pull-cached.ts says why)
const cachedBuilds = [];
const cachedCommands = (await readdir(resolve(root, 'src/cli')))
  .filter((f) => f.endsWith('-cached.ts'))
  .map((f) => f.slice(0, -'-cached.ts'.length));
for (const command of cachedCommands)
  cachedBuilds.push(
    await build({
      absWorkingDir: root,
      entryPoints: [`src/cli/${command}-cached.ts`],
      outfile: `${outdir}/cli/${command}.cjs`,
      bundle: true,
      format: 'cjs',
      platform: 'node',
      target: 'node20',
      sourcemap: 'linked',
      logLevel: 'warning',
      metafile: true,
      // only an s3:// target loads the AWS SDK: left to require() from node_modules then, not compiled into the copy
      external: ['@aws-sdk/*', '@smithy/*'],
    }),
  );

// What bin/bundlemirror checks before it runs this build: the sources it was
// built from (a source nothing imports cannot make it stale) and when. A
// list to stat instead of a walk of src/ on every command.
const sources = [
  ...new Set([...Object.keys(metafile.inputs), ...cachedBuilds.flatMap((b) => Object.keys(b.metafile.inputs))]),
]
  .filter((p) => p.startsWith('src/'))
  .sort();
await writeFile(`${outdir}/built-from.json`, `${JSON.stringify({ builtAt, sources })}\n`);
