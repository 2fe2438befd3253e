/**
 * Python's `fnmatch.fnmatch` as grokmirror uses it on manifest paths
 * (include, exclude, nopurge, ffonly). The semantics differ from shell
 * globbing in ways users of an existing grokmirror.conf rely on:
 *
 * - `*` and `?` also match `/` (so `*` alone selects every repository and
 *   `*\/linux.git` matches at any depth);
 * - `[seq]`, `[!seq]` are character sets; `]` right after the opening `[`
 *   (or `[!`) is literal, `-` first or last is literal, a reversed range
 *   matches nothing; `[^x]` means "`^` or `x`", not negation;
 * - a `[` without a closing `]` is a literal `[`;
 * - backslash is an ordinary character (no escaping);
 * - matching is case-sensitive (POSIX `normcase` is the identity).
 */

const cache = new Map<string, RegExp>();
const CACHE_LIMIT = 4096;

/** True when `name` matches the whole of `pattern` (Python `fnmatch.fnmatch` on POSIX). */
export function fnmatch(name: string, pattern: string): boolean {
  // the usual include (`*`, grokmirror's default) matches every path: no need to ask its expression 10,000 times
  if (pattern === '*') return true;
  return compileGlob(pattern).test(name);
}

/** The first pattern `name` matches, or undefined (for messages that say which glob decided). */
export function firstMatch(name: string, patterns: readonly string[]): string | undefined {
  return patterns.find((p) => fnmatch(name, p));
}

export function compileGlob(pattern: string): RegExp {
  let re = cache.get(pattern);
  if (!re) {
    re = new RegExp(`^(?:${translate(pattern)})$`, 'su');
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(pattern, re);
  }
  return re;
}

/** Translates a glob to a regular expression body (JavaScript, `u` and `s` flags). */
export function translate(pattern: string): string {
  const pat = Array.from(pattern); // code points, as Python indexes str
  const n = pat.length;
  let out = '';
  let i = 0;
  while (i < n) {
    const c = pat[i]!;
    i += 1;
    if (c === '*') {
      while (i < n && pat[i] === '*') i += 1; // `**` means the same as `*`
      out += '.*';
    } else if (c === '?') {
      out += '.';
    } else if (c === '[') {
      let j = i;
      if (j < n && pat[j] === '!') j += 1;
      if (j < n && pat[j] === ']') j += 1;
      while (j < n && pat[j] !== ']') j += 1;
      if (j >= n) {
        out += '\\[';
        continue;
      }
      let body = pat.slice(i, j);
      i = j + 1;
      const negate = body[0] === '!';
      if (negate) body = body.slice(1);
      out += charClass(body, negate);
    } else {
      out += escapeChar(c);
    }
  }
  return out;
}

function charClass(body: string[], negate: boolean): string {
  const parts: string[] = [];
  let k = 0;
  while (k < body.length) {
    const a = body[k]!;
    if (k + 2 < body.length && body[k + 1] === '-') {
      const b = body[k + 2]!;
      // Python drops reversed ranges (they are invalid in a regex)
      if (a.codePointAt(0)! <= b.codePointAt(0)!) parts.push(`${classChar(a)}-${classChar(b)}`);
      k += 3;
    } else {
      parts.push(classChar(a));
      k += 1;
    }
  }
  if (parts.length === 0) return negate ? '.' : '(?!)';
  return `[${negate ? '^' : ''}${parts.join('')}]`;
}

function classChar(c: string): string {
  return `\\u{${c.codePointAt(0)!.toString(16)}}`;
}

function escapeChar(c: string): string {
  return /[\\^$.*+?()[\]{}|/]/.test(c) ? `\\${c}` : c;
}
