// Loaded with `node --import` in front of bin/bundlemirror by the bench: at
// exit, writes this process's own resource usage (not its git children's)
// to $BENCH_RUSAGE_FILE, so peak memory of our process is reported apart
// from git's (whose RSS includes the packs it maps).
import { writeFileSync } from 'node:fs';

const out = process.env.BENCH_RUSAGE_FILE;
if (out) process.on('exit', () => writeFileSync(out, JSON.stringify(process.resourceUsage())));
