/**
 * Shell-style globs with Python fnmatch semantics, because that is what
 * grokmirror applies to manifest paths: `*` also matches `/`, so an
 * existing `include = /pub/scm/*` keeps meaning what it meant.
 */
const cache = new Map<string, RegExp>();

export function fnmatch(name: string, pattern: string): boolean {
  let re = cache.get(pattern);
  if (!re) {
    re = translate(pattern);
    if (cache.size > 1000) cache.clear();
    cache.set(pattern, re);
  }
  return re.test(name);
}

function translate(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') out += '[\\s\\S]*';
    else if (c === '?') out += '[\\s\\S]';
    else if (c === '[') {
      const end = pattern.indexOf(']', pattern[i + 1] === '!' || pattern[i + 1] === ']' ? i + 2 : i + 1);
      if (end === -1) {
        out += '\\[';
        continue;
      }
      let body = pattern.slice(i + 1, end);
      i = end;
      const negate = body.startsWith('!');
      if (negate) body = body.slice(1);
      body = body.replace(/\\/g, '\\\\').replace(/\^/g, '\\^').replace(/\]/g, '\\]');
      out += `[${negate ? '^' : ''}${body}]`;
    } else out += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^(?:${out})$`);
}
