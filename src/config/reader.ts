/**
 * Reading values out of a parsed grokmirror.conf: typed getters that throw
 * E_CONFIG naming section, key and line, warnings for relative paths, and
 * the report of keys nobody reads (with a guess at the key that was meant)
 * or that only grokmirror reads.
 */
import { homedir } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { BundlemirrorError } from '../errors.js';
import { parseBoolean, parseInteger, splitLines, type IniDocument } from './ini.js';
import { shlexSplit } from './shlex.js';
import { scheduleSectionName } from './schedule-section.js';

/** What the reader reports about a file that still parses. */
export interface ConfigWarning {
  section: string;
  key: string | null;
  /**
   * `unknown`: nobody reads this (likely a typo); `unused`: a grokmirror
   * setting bundlemirror ignores; `replaced`: a grokmirror setting
   * bundlemirror does another way (the message names it); `value`: a value
   * was adjusted.
   */
  kind: 'unknown' | 'unused' | 'replaced' | 'value';
  message: string;
}

/**
 * Every key grokmirror 2 reads from grokmirror.conf. Whether bundlemirror
 * uses a key is listed nowhere: it is what the Reader was asked for, so the
 * report of unused and unknown keys cannot drift from the code that reads.
 */
const GROKMIRROR_KEYS: Readonly<Record<string, readonly string[]>> = {
  core: ['toplevel', 'manifest', 'log', 'loglevel', 'objstore', 'objstore_uses_plumbing', 'private'],
  remote: ['site', 'manifest', 'manifest_command', 'preload_bundle_url'],
  pull: [
    ...['include', 'exclude', 'nopurge', 'ffonly', 'pull_threads', 'retries', 'purge', 'purgeprotect'],
    ...['post_update_hook', 'post_clone_complete_hook', 'post_work_complete_hook'],
    ...[
      'projectslist',
      'projectslist_trimtop',
      'projectslist_symlinks',
      'default_owner',
      'remotename',
      'refresh',
      'socket',
    ],
  ],
  manifest: ['pretty', 'ignore', 'ignore_refs', 'fetch_objstore', 'check_export_ok'],
  fsck: [
    ...[
      'frequency',
      'statusfile',
      'ignore_errors',
      'reclone_on_errors',
      'repack',
      'extra_repack_flags',
      'extra_repack_flags_full',
    ],
    ...[
      'commitgraph',
      'prune',
      'precious',
      'baselines',
      'islandcores',
      'obstrepo_merge_strategy',
      'preload_bundle_outdir',
    ],
    ...['report_to', 'report_from', 'report_subject', 'report_mailhost'],
  ],
};

/** Sections that belong to other grokmirror commands. */
const OTHER_TOOLS: Record<string, string> = { manifest: 'grok-manifest' };

/** Which command reads the file, and which sections belong to other programs. */
export interface ReaderScope {
  /** For messages: `bundlemirror pull`. */
  command: string;
  /** The program that reads a section this command does not, if any. */
  otherTool: (section: string) => string | undefined;
  /** Such sections are noted once and their keys left unchecked (another program's file shares them). */
  skipOtherSections?: boolean;
}

const PULL_SCOPE: ReaderScope = { command: 'bundlemirror pull', otherTool: (section) => OTHER_TOOLS[section] };

export class Reader {
  readonly warnings: ConfigWarning[] = [];
  /** Keys asked for, by section: what bundlemirror reads. */
  private readonly asked = new Map<string, Set<string>>();

  constructor(
    private readonly doc: IniDocument,
    private readonly source: string,
    private readonly cwd: string,
    private readonly scope: ReaderScope = PULL_SCOPE,
  ) {}

  fail(section: string, key: string | null, message: string, hint?: string): never {
    const line = key ? this.doc.lineOf(section, key) : undefined;
    const where = key ? `[${section}] ${key}${line ? ` (line ${line})` : ''}` : `[${section}]`;
    throw new BundlemirrorError('E_CONFIG', `${this.source}: ${where} ${message}`, { hint });
  }

  warn(section: string, key: string | null, kind: ConfigWarning['kind'], message: string): void {
    this.warnings.push({
      section,
      key,
      kind,
      message: `${this.source}: [${section}]${key ? ` ${key}` : ''}: ${message}`,
    });
  }

  private read(section: string, key: string): string | undefined {
    let keys = this.asked.get(section);
    if (!keys) this.asked.set(section, (keys = new Set()));
    keys.add(key);
    return this.doc.get(section, key);
  }

  str(section: string, key: string, fallback: string): string {
    return this.read(section, key) ?? fallback;
  }

  bool(section: string, key: string, fallback: boolean): boolean {
    const v = this.read(section, key);
    if (v === undefined) return fallback;
    const b = parseBoolean(v);
    if (b === undefined) this.fail(section, key, `must be yes/no, true/false, on/off or 1/0, got ${JSON.stringify(v)}`);
    return b;
  }

  int(
    section: string,
    key: string,
    fallback: number,
    range: { min?: number; max?: number; what?: string } = {},
  ): number {
    const v = this.read(section, key);
    if (v === undefined) return fallback;
    const n = parseInteger(v);
    const what = range.what ?? `a whole number${range.min !== undefined ? ` of at least ${range.min}` : ''}`;
    if (n === undefined || (range.min !== undefined && n < range.min) || (range.max !== undefined && n > range.max)) {
      this.fail(section, key, `must be ${what}, got ${JSON.stringify(v)}`);
    }
    return n;
  }

  /** Seconds, written as a number of seconds or with a unit: `90m`, `36h`, `7d`. */
  duration(section: string, key: string, fallback: number): number {
    const v = this.read(section, key);
    if (v === undefined || v.trim() === '') return fallback;
    const m = /^\s*(\d+)\s*([smhd]?)\s*$/.exec(v);
    if (!m) this.fail(section, key, `must be a duration such as 86400, 36h or 7d (0: off), got ${JSON.stringify(v)}`);
    return Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  }

  list(section: string, key: string, fallback: string[]): string[] {
    const v = this.read(section, key);
    return v === undefined ? fallback : splitLines(v);
  }

  /** An optional filesystem path: `~` expanded; empty means unset; relative ones resolve against cwd, with a warning. */
  path(section: string, key: string): string | null {
    const v = this.read(section, key);
    if (v === undefined || v === '') return null;
    const p = expandUser(v);
    if (isAbsolute(p)) return resolve(p);
    const abs = resolve(this.cwd, p);
    this.warn(
      section,
      key,
      'value',
      `relative path ${JSON.stringify(v)} resolved against the current directory to ${abs}; write an absolute path`,
    );
    return abs;
  }

  /** An http(s) or file URL; a relative one resolves against `base` (the site). */
  url(section: string, key: string, value: string, base: string): string {
    let u: URL;
    try {
      u = new URL(value, URL.canParse(value) ? undefined : `${base}/`);
    } catch {
      this.fail(section, key, `must be a URL (http://, https:// or file://), got ${JSON.stringify(value)}`);
    }
    if (!['http:', 'https:', 'file:'].includes(u.protocol)) {
      this.fail(section, key, `must be an http://, https:// or file:// URL, got ${JSON.stringify(value)}`);
    }
    if (u.username || u.password) {
      this.fail(
        section,
        key,
        'must not contain a user name or password',
        'put credentials in ~/.netrc, as with grokmirror 2',
      );
    }
    return u.href;
  }

  commands(section: string, key: string): string[] {
    const lines = this.list(section, key, []);
    for (const line of lines) {
      try {
        shlexSplit(line);
      } catch (err) {
        this.fail(
          section,
          key,
          `cannot split ${JSON.stringify(line)} into words: ${(err as Error).message}`,
          'check the quoting',
        );
      }
    }
    return lines;
  }

  /** Call after every value was read: keys nobody asked for are typos, or grokmirror settings we ignore. */
  reportUnknownKeys(): void {
    const knownSections = [...new Set([...this.asked.keys(), ...Object.keys(GROKMIRROR_KEYS)])].filter(
      (s) => scheduleSectionName(s) === null,
    );
    for (const section of this.doc.sections()) {
      const ours = this.asked.get(section) ?? new Set<string>();
      const grokmirror = GROKMIRROR_KEYS[section] ?? [];
      const other = this.scope.otherTool(section);
      if (other && ours.size === 0 && this.scope.skipOtherSections) {
        this.warn(section, null, 'unused', `[${section}] is read by ${other}, not by ${this.scope.command}`);
        continue;
      }
      if (ours.size === 0 && grokmirror.length === 0) {
        const keys = this.doc.ownKeys(section);
        if (keys.length > 0 && keys.every((k) => this.doc.referenced.has(`${section}:${k}`))) continue; // only ${section:key} variables
        const meant = closest(section, knownSections);
        if (meant)
          this.fail(section, null, `is not a known section; did you mean [${meant}]?`, `rename it to [${meant}]`);
        this.warn(
          section,
          null,
          'unknown',
          `unknown section [${section}], ignored (known: ${knownSections.map((s) => `[${s}]`).join(' ')})`,
        );
        continue;
      }
      if (other) {
        this.warn(section, null, 'unused', `[${section}] is read by ${other}, not by ${this.scope.command}`);
      }
      for (const key of this.doc.ownKeys(section)) {
        if (ours.has(key) || this.doc.referenced.has(`${section}:${key}`)) continue; // read, or a variable for ${...}
        if (grokmirror.includes(key)) {
          if (!other) this.warn(section, key, 'unused', 'a grokmirror setting that bundlemirror does not use; ignored');
          continue;
        }
        // a near miss of a key we read (`inculde`) would silently mirror everything: stop instead
        const guess = closest(key, [...ours]);
        if (guess)
          this.fail(
            section,
            key,
            `is not a known key; did you mean ${guess}?`,
            `rename it to ${guess}, or delete the line`,
          );
        const unused = closest(key, [...grokmirror]);
        this.warn(section, key, 'unknown', `unknown key, ignored${unused ? ` (did you mean ${unused}?)` : ''}`);
      }
    }
  }
}

export function expandUser(p: string): string {
  if (p === '~') return homedir();
  if (p.startsWith('~/')) return homedir() + p.slice(1);
  return p;
}

function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}
