/**
 * INI files read the way Python's `configparser.ConfigParser(interpolation=
 * ExtendedInterpolation())` reads them, because that is how grok-pull reads
 * the grokmirror.conf our users already have:
 *
 * - `[section]` headers (names case-sensitive), `[DEFAULT]` values visible
 *   in every section;
 * - `key = value` or `key: value` (first `=` or `:` splits), keys
 *   case-insensitive (lowercased), value whitespace stripped;
 * - full-line comments start with `#` or `;` (after optional indentation);
 *   there are no inline comments: `a = b # c` has the value `b # c`;
 * - a line indented deeper than its key line continues the value (joined
 *   with `\n`); blank lines inside a value are kept, trailing ones dropped;
 * - duplicate sections and duplicate keys within a section are errors
 *   (configparser's `strict` mode);
 * - `${key}` (same section, then [DEFAULT]), `${section:key}` and `$$`
 *   are interpolated when a value is read, up to 10 levels deep.
 *
 * Errors are BundlemirrorError('E_CONFIG') naming the file and line, or the
 * section and key.
 */
import { BundlemirrorError } from '../errors.js';

export const DEFAULT_SECTION = 'DEFAULT';
const MAX_INTERPOLATION_DEPTH = 10;

interface RawValue {
  lines: string[];
  line: number;
}

export class IniDocument {
  /** Section name -> key -> raw (uninterpolated) value. */
  private readonly data = new Map<string, Map<string, RawValue>>();
  private readonly defaults = new Map<string, RawValue>();
  /** `section:key` pairs that some interpolation referred to. */
  readonly referenced = new Set<string>();

  constructor(readonly source: string) {}

  static parse(text: string, source = 'config'): IniDocument {
    const doc = new IniDocument(source);
    doc.read(text);
    return doc;
  }

  /** Section names in file order, without DEFAULT. */
  sections(): string[] {
    return [...this.data.keys()];
  }

  hasSection(section: string): boolean {
    return this.data.has(section);
  }

  /** Keys written in the section itself (not inherited from DEFAULT), in file order. */
  ownKeys(section: string): string[] {
    return [...(this.data.get(section)?.keys() ?? [])];
  }

  defaultKeys(): string[] {
    return [...this.defaults.keys()];
  }

  /** Line number where a key was set (for messages). */
  lineOf(section: string, key: string): number | undefined {
    return this.lookup(section, key.toLowerCase())?.line;
  }

  has(section: string, key: string): boolean {
    return this.lookup(section, key.toLowerCase()) !== undefined;
  }

  /** The value before interpolation, or undefined. */
  raw(section: string, key: string): string | undefined {
    const v = this.lookup(section, key.toLowerCase());
    return v === undefined ? undefined : joinValue(v.lines);
  }

  /** The interpolated value, or undefined when the key is absent. */
  get(section: string, key: string): string | undefined {
    const k = key.toLowerCase();
    const raw = this.raw(section, k);
    if (raw === undefined) return undefined;
    const out: string[] = [];
    this.interpolate(section, k, raw, out, 1);
    return out.join('');
  }

  /** Replaces a raw value (used to normalise toplevel before others refer to it). */
  setRaw(section: string, key: string, value: string): void {
    const target = section === DEFAULT_SECTION ? this.defaults : this.data.get(section);
    if (!target) throw new Error(`no section ${section}`);
    const prev = target.get(key.toLowerCase());
    target.set(key.toLowerCase(), { lines: [value], line: prev?.line ?? 0 });
  }

  private lookup(section: string, key: string): RawValue | undefined {
    if (section === DEFAULT_SECTION) return this.defaults.get(key);
    const sect = this.data.get(section);
    if (!sect) return undefined;
    return sect.get(key) ?? this.defaults.get(key);
  }

  private fail(message: string, hint?: string): never {
    throw new BundlemirrorError('E_CONFIG', `${this.source}: ${message}`, { hint });
  }

  private read(text: string): void {
    const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\n|\r/);
    let section: Map<string, RawValue> | null = null;
    let sectionName = '';
    let current: RawValue | null = null;
    let indentLevel = 0;
    const seenSections = new Set<string>();
    const seenKeys = new Set<string>();

    lines.forEach((line, idx) => {
      const lineno = idx + 1;
      const stripped = line.trim();
      if (stripped.startsWith('#') || stripped.startsWith(';')) return; // comment: value continues past it
      if (stripped === '') {
        // configparser keeps blank lines inside a multi-line value
        if (current) current.lines.push('');
        return;
      }
      const indent = line.length - line.trimStart().length;
      if (section && current && indent > indentLevel) {
        current.lines.push(stripped);
        return;
      }
      indentLevel = indent;
      const header = /^\[(.+)\]/.exec(stripped);
      if (header) {
        const name = header[1]!;
        if (seenSections.has(name) && name !== DEFAULT_SECTION) {
          this.fail(`line ${lineno}: section [${name}] appears twice`, 'merge the two sections into one');
        }
        seenSections.add(name);
        if (name === DEFAULT_SECTION) section = this.defaults;
        else {
          section = this.data.get(name) ?? new Map();
          this.data.set(name, section);
        }
        sectionName = name;
        current = null;
        return;
      }
      if (!section) {
        this.fail(
          `line ${lineno}: "${stripped.slice(0, 60)}" comes before any [section] header`,
          'start the file with a section such as [core]',
        );
      }
      const m = /^(.*?)\s*([=:])\s*(.*)$/.exec(stripped);
      if (!m || m[1] === '') {
        this.fail(
          `line ${lineno}: expected "key = value", found "${stripped.slice(0, 60)}"`,
          'continuation lines of a multi-line value must be indented',
        );
      }
      const key = m[1]!.trimEnd().toLowerCase();
      if (seenKeys.has(`${sectionName}\0${key}`)) {
        this.fail(`line ${lineno}: key "${key}" appears twice in [${sectionName}]`, 'keep only one of them');
      }
      seenKeys.add(`${sectionName}\0${key}`);
      current = { lines: [m[3]!.trim()], line: lineno };
      section.set(key, current);
    });
  }

  private interpolate(section: string, key: string, rest: string, out: string[], depth: number): void {
    const where = `[${section}] ${key}`;
    if (depth > MAX_INTERPOLATION_DEPTH) {
      this.fail(`${where}: interpolation nested more than ${MAX_INTERPOLATION_DEPTH} levels (a reference loop?)`);
    }
    while (rest.length > 0) {
      const p = rest.indexOf('$');
      if (p < 0) {
        out.push(rest);
        return;
      }
      if (p > 0) {
        out.push(rest.slice(0, p));
        rest = rest.slice(p);
      }
      const c = rest.charAt(1);
      if (c === '$') {
        out.push('$');
        rest = rest.slice(2);
        continue;
      }
      if (c !== '{') {
        this.fail(
          `${where}: "$" must be followed by "$" or "{", found ${JSON.stringify(rest.slice(0, 20))}`,
          'write $$ for a literal dollar sign',
        );
      }
      const m = /^\$\{([^}]+)\}/.exec(rest);
      if (!m)
        this.fail(
          `${where}: bad interpolation reference ${JSON.stringify(rest.slice(0, 40))}`,
          'references look like ${key} or ${section:key}',
        );
      rest = rest.slice(m[0].length);
      const path = m[1]!.split(':');
      let refSection: string;
      let refKey: string;
      if (path.length === 1) {
        refSection = section;
        refKey = path[0]!.toLowerCase();
      } else if (path.length === 2) {
        refSection = path[0]!;
        refKey = path[1]!.toLowerCase();
      } else {
        this.fail(`${where}: more than one ":" in \${${m[1]}}`);
      }
      const value = this.raw(refSection, refKey);
      if (value === undefined) {
        const missing =
          path.length === 1 ? `key "${refKey}" in [${section}] or [DEFAULT]` : `key "${refKey}" in [${refSection}]`;
        this.fail(
          `${where}: \${${m[1]}} refers to ${missing}, which is not set`,
          'define it, or use ${section:key} to refer to another section',
        );
      }
      this.referenced.add(`${refSection}:${refKey}`);
      if (value.includes('$')) this.interpolate(refSection, refKey, value, out, depth + 1);
      else out.push(value);
    }
  }
}

function joinValue(lines: string[]): string {
  return lines.join('\n').trimEnd();
}

/** configparser's boolean spellings. */
export function parseBoolean(value: string): boolean | undefined {
  switch (value.toLowerCase()) {
    case '1':
    case 'yes':
    case 'true':
    case 'on':
      return true;
    case '0':
    case 'no':
    case 'false':
    case 'off':
      return false;
    default:
      return undefined;
  }
}

/** Python `int()` on a string: optional sign, digits, single underscores between digits. */
export function parseInteger(value: string): number | undefined {
  const v = value.trim();
  if (!/^[+-]?\d+(?:_\d+)*$/.test(v)) return undefined;
  const n = Number(v.replace(/_/g, ''));
  return Number.isSafeInteger(n) ? n : undefined;
}

/** A multi-line value as a list: one entry per line, blank lines dropped. */
export function splitLines(value: string): string[] {
  return value
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
}
