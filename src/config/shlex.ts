/**
 * Command lines in a config file (hooks) are split into words as grokmirror
 * splits them, so a hook line that works there works here.
 */
/**
 * Splits a command line like `shlex.shlex(s, posix=True)` with
 * `whitespace_split = True`. Throws on an unclosed quote or a trailing
 * backslash.
 */
export function shlexSplit(line: string): string[] {
  const words: string[] = [];
  let state: ' ' | 'a' | "'" | '"' | '\\' = ' ';
  let escaped: 'a' | '"' = 'a';
  let token = '';
  let quoted = false;
  const push = (): void => {
    if (token !== '' || quoted) words.push(token);
    token = '';
    quoted = false;
  };
  const chars = Array.from(line);
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    switch (state) {
      case ' ':
      case 'a':
        if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
          push();
          state = ' ';
        } else if (c === '#') {
          // shlex's default commenters: the rest of the line is a comment
          while (i + 1 < chars.length && chars[i + 1] !== '\n') i++;
          push();
          state = ' ';
        } else if (c === "'" || c === '"') {
          state = c;
        } else if (c === '\\') {
          escaped = 'a';
          state = '\\';
        } else {
          token += c;
          state = 'a';
        }
        break;
      case "'":
      case '"':
        quoted = true;
        if (c === state) state = 'a';
        else if (c === '\\' && state === '"') {
          escaped = '"';
          state = '\\';
        } else token += c;
        break;
      case '\\':
        // inside double quotes a backslash only escapes `"` and `\`
        if (escaped === '"' && c !== '\\' && c !== '"') token += '\\';
        token += c;
        state = escaped;
        break;
    }
  }
  if (state === "'" || state === '"') throw new Error('no closing quotation');
  if (state === '\\') throw new Error('no escaped character after the final backslash');
  push();
  return words;
}
