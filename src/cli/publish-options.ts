/**
 * publish's options, written once, as data. commander builds the command
 * from them (publish.ts; gc takes the store's too, commander-options.ts), the
 * hook's commander-free reader starts from their defaults
 * (publish-argv.ts), and `-c FILE` reads one `[publish]` key per option
 * that describes the publisher rather than one run. Nothing here loads
 * commander, so a hook's publish pays for none of it.
 */
import { DEFAULT_CHAIN_POLICY as P } from '../origin/chain.js';
import type { PublishKey } from '../origin/publish-config.js';

export interface OptionSpec {
  /** As commander takes them (`-t, --toplevel <dir>`); the placeholder says what a value is: dir, file, url. */
  flags: string;
  description: string;
  /** What the action gets when the option is not given: a string as typed, or [] for a repeatable one. */
  default?: string | string[];
  /** How --help shows the default, when not as the string itself. */
  defaultHelp?: string;
  /** Given more than once, the values collect into a list. */
  repeatable?: boolean;
  /** Left out of --help: an old name. */
  hidden?: boolean;
  /** Describes one run, not the publisher: no `[publish]` key. */
  perRun?: boolean;
}

const mib = (bytes: number | undefined) => String((bytes ?? 0) / 2 ** 20);

export const PUBLISH_OPTIONS: readonly OptionSpec[] = [
  {
    flags: '-c, --config <file>',
    description: 'publish config: [publish] keys named as these flags (base_url = ...); flags given here win',
    perRun: true,
  },
  {
    flags: '--config-check',
    description: 'read the config, report every problem and the settings in effect, and exit (0: usable, 2: not)',
    perRun: true,
  },
  { flags: '-t, --toplevel <dir>', description: 'directory holding the bare repositories (any depth)' },
  {
    flags: '--bundles <dir>',
    description: 'where to write the published tree (a directory serve --bundles serves, or s3://BUCKET/PREFIX)',
    default: 'bundles',
  },
  { flags: '-o, --out <dir>', description: 'the old name of --bundles', hidden: true, perRun: true },
  {
    flags: '--base-url <url>',
    description: 'URL at which --bundles is served; bundle-list files then carry absolute URIs',
  },
  {
    flags: '--ignore <glob>',
    description: 'leave out repositories whose manifest path matches (repeatable)',
    default: [],
    repeatable: true,
  },
  {
    flags: '--wait <seconds>',
    description: 'how long to wait for another publish into the same --bundles',
    default: '300',
  },
  {
    flags: '--max-incrementals <n>',
    description: 'incremental bundles on top of one base before a new base',
    default: String(P.maxIncrementals),
  },
  {
    flags: '--chain-ratio <r>',
    description: 'new base once incrementals add up to this fraction of the base',
    default: String(P.maxChainRatio),
  },
  {
    flags: '--grace-days <d>',
    description: 'how long superseded bundles stay listed and on disk',
    default: String(P.graceMs / 86_400_000),
  },
  {
    flags: '--slices <n>',
    description:
      'publish a new base as a chain of n history slices, so a replica resolves one while the next downloads (1: one base)',
    default: String(P.slices),
  },
  {
    flags: '--slice-min-mib <m>',
    description: 'slice only repositories storing at least this many MiB',
    default: mib(P.sliceMinBytes),
  },
  {
    flags: '--parts <n>',
    description: "publish a new base's pack in up to n parts a replica indexes while the rest downloads (1: one piece)",
    default: String(P.parts),
  },
  {
    flags: '--parts-min-mib <m>',
    description: 'cut into parts only the bases of repositories storing at least this many MiB',
    default: mib(P.partsMinBytes),
  },
  {
    flags: '--sign-key <file>',
    description: 'SSH private key: sign manifest.js.gz and every index.json (ssh-keygen -Y sign -n bundlemirror)',
  },
  { flags: '-q, --quiet', description: 'print only the summary and errors' },
  {
    flags: '--json',
    description: 'print the report as JSON on stdout instead of the summary (implies --quiet)',
    perRun: true,
  },
  {
    flags: '-x, --remove',
    description:
      "take the repositories named as REPO out of the manifest (deleted from the toplevel; grok-manifest's -x), publishing nothing else",
    perRun: true,
  },
  {
    flags: '--force',
    description: 'with -x: remove even a repository still on disk (a full publish adds it back)',
    perRun: true,
  },
  {
    flags: '--notify <url>',
    description:
      'then tell this replica daemon which repositories changed, e.g. http://replica:8090/notify (repeatable)',
    default: [],
    repeatable: true,
  },
  {
    flags: '--notify-token-file <file>',
    description: "bearer token for --notify (the replicas' [bundlemirror] notify_token_file)",
  },
];

/** The options of an s3:// target, shared by publish and gc; publish registers them after its own. */
export const STORE_OPTIONS: readonly OptionSpec[] = [
  {
    flags: '--state <dir>',
    description:
      'for an s3:// target: the local copy of the tree and what the store holds (default: one directory per URL under $XDG_STATE_HOME/bundlemirror/publish)',
  },
  {
    flags: '--s3-path-style',
    description:
      'for an s3:// target: path-style URLs (endpoint/bucket/key), as MinIO, Ceph and most self-hosted stores need',
  },
  {
    flags: '--s3-part-size <bytes>',
    description:
      'for an s3:// target: files larger than this go up in resumable parts of this size (S3 needs 5 MiB or more)',
    default: String(64 << 20),
    defaultHelp: '67108864 = 64 MiB',
  },
];

const ALL = [...PUBLISH_OPTIONS, ...STORE_OPTIONS];

/** The property the value goes to, as commander names it: the long flag in camelCase (`--base-url`: baseUrl). */
export function attributeOf(spec: OptionSpec): string {
  const long = /--([\w-]+)/.exec(spec.flags)?.[1] ?? spec.flags;
  return long.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
}

/** Every option's value when not given, by attribute: what commander hands the action before `-c FILE` is merged. */
export function publishDefaults(): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const o of ALL) if (o.default !== undefined) out[attributeOf(o)] = Array.isArray(o.default) ? [] : o.default;
  return out;
}

/** `[publish]` keys: one per option that describes the publisher, named after it (`--base-url`: `base_url`). */
export const PUBLISH_KEYS: readonly PublishKey[] = ALL.filter((o) => !o.hidden && !o.perRun).map((o) => {
  const attr = attributeOf(o);
  const placeholder = /<([^>]*)>/.exec(o.flags)?.[1];
  const def = o.default;
  return {
    key: attr.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`),
    attr,
    flag: /--[\w-]+/.exec(o.flags)![0],
    kind: placeholder === undefined ? 'switch' : o.repeatable ? 'list' : 'value',
    path: /\b(dir|file)\b/.test(placeholder ?? ''),
    url: /\burl\b/.test(placeholder ?? ''),
    number: typeof def === 'string' && def.trim() !== '' && Number.isFinite(Number(def)),
  };
});
