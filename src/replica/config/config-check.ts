/**
 * The last check of a replica config, by hand. Every value has passed the
 * reader's typed getters by then, so this guards against a value they let
 * through that the rest of the code cannot take (a gid or a duration past
 * the safe integers, a URL that resolved oddly). It accepts exactly what
 * `PullConfigSchema` (config-schema.ts) accepts and returns what zod would
 * (a copy, in the schema's key order, unknown keys left out), without
 * building the schema, which every command that reads a config paid for,
 * a cron'd poll included (zod itself is still loaded, by the manifest's
 * schema). The property test
 * (test/config-check.test.ts) holds the two together.
 */
import { isAbsolute } from 'node:path';
import type { PullConfig } from './config-schema.js';

/** Where the config is not what the code needs: its path in the object, and what it must be. */
export class ConfigShapeError extends Error {
  constructor(
    readonly path: string,
    readonly expected: string,
  ) {
    super(`${path}: must be ${expected}`);
  }
}

type Parse = (v: unknown, path: string) => unknown;

const refuse = (path: string, expected: string): never => {
  throw new ConfigShapeError(path, expected);
};
const is =
  (test: (v: unknown) => boolean, expected: string): Parse =>
  (v, path) =>
    test(v) ? v : refuse(path, expected);

const text = is((v) => typeof v === 'string', 'a string');
const nonEmpty = is((v) => typeof v === 'string' && v.length > 0, 'a non-empty string');
const absPath = is((v) => typeof v === 'string' && isAbsolute(v), 'an absolute path');
const url = is((v) => typeof v === 'string' && URL.canParse(v), 'a URL');
const dirUrl = is((v) => typeof v === 'string' && URL.canParse(v) && v.endsWith('/'), 'a URL ending with "/"');
const flag = is((v) => typeof v === 'boolean', 'true or false');
const number = is((v) => typeof v === 'number' && Number.isFinite(v), 'a number');
const int = (min: number, max = Number.MAX_SAFE_INTEGER): Parse =>
  is(
    (v) => Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max,
    max === Number.MAX_SAFE_INTEGER ? `a whole number, at least ${min}` : `a whole number from ${min} to ${max}`,
  );
const oneOf = (...values: string[]): Parse =>
  is((v) => values.includes(v as string), values.map((w) => JSON.stringify(w)).join(' or '));
const nullable =
  (parse: Parse): Parse =>
  (v, path) =>
    v === null ? null : parse(v, path);
const list =
  (parse: Parse): Parse =>
  (v, path) => {
    if (!Array.isArray(v)) return refuse(path, 'a list');
    // every index, holes included (map() would skip a hole that zod reads as undefined)
    const out: unknown[] = [];
    for (let i = 0; i < v.length; i++) out.push(parse(v[i], `${path}.${i}`));
    return out;
  };
const object =
  (shape: Record<string, Parse>): Parse =>
  (v, path) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return refuse(path, 'an object');
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(shape))
      out[key] = shape[key]!((v as Record<string, unknown>)[key], path ? `${path}.${key}` : key);
    return out;
  };

const strings = list(text);

const pullConfig = object({
  file: text,
  mtimeMs: number,
  core: object({
    toplevel: absPath,
    manifest: absPath,
    log: nullable(absPath),
    loglevel: oneOf('info', 'debug'),
    objstore: absPath,
  }),
  remote: object({
    site: nonEmpty,
    manifest: url,
    allowedSigners: nullable(absPath),
    manifestMaxAgeMs: int(0),
    onDemand: nullable(url),
    mirrors: list(url),
  }),
  publish: object({ out: nullable(absPath), graceMs: int(0) }),
  pull: object({
    include: strings,
    exclude: strings,
    nopurge: strings,
    ffonly: strings,
    pullThreads: int(1),
    retries: int(0),
    purge: flag,
    purgeprotect: int(0, 100),
    postUpdateHook: strings,
    postCloneCompleteHook: strings,
    postWorkCompleteHook: strings,
    projectslist: nullable(absPath),
    projectslistTrimtop: text,
    projectslistSymlinks: flag,
    defaultOwner: text,
    refresh: nullable(int(1)),
    socket: nullable(absPath),
    socketMode: int(0, 0o777),
    socketGroup: nullable(int(0)),
    lfs: flag,
    retryForMs: int(1),
  }),
  bundlemirror: object({
    bundles: dirUrl,
    gitUrl: text,
    hookTimeoutMs: int(0),
    listen: nullable(object({ host: nonEmpty, port: int(0, 65535) })),
    notifyTokenFile: nullable(absPath),
    redirects: list(url),
  }),
  fsck: object({
    frequencyDays: int(1),
    ignoreErrors: strings,
    recloneOnErrors: nullable(strings),
    repack: flag,
    extraRepackFlags: strings,
    extraRepackFlagsFull: strings,
    fullRepackEvery: int(0),
    commitgraph: flag,
    connectivityOnly: flag,
    reportHook: strings,
  }),
  schedules: list(object({ name: nonEmpty, cron: text, include: strings })),
  warnings: list(
    object({
      section: text,
      key: nullable(text),
      kind: oneOf('unknown', 'unused', 'replaced', 'value'),
      message: text,
    }),
  ),
});

/** The config as `PullConfigSchema.parse` returns it; throws ConfigShapeError where the schema would refuse. */
export function checkPullConfig(config: unknown): PullConfig {
  return pullConfig(config, '') as PullConfig;
}
