/**
 * Strings that came from the network, on their way to a terminal, a log,
 * state.json, `status` or a hook. An origin chooses them, so raw they could
 * move the cursor, rewrite what a terminal shows (escape sequences, C1
 * controls), split a log line (U+2028/2029) or show text in another order
 * than it is stored (bidi overrides). Repository paths with such characters
 * are refused outright (git/refname.ts); every other such string is printed
 * through `escapeUntrusted`. URLs we print lose their userinfo
 * (`redactUrl`): a password in `[remote] site` must not reach a log.
 */

/** C0 and C1 controls, DEL, line and paragraph separators, bidi embeddings, overrides, isolates and marks. */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;
const UNSAFE_ALL = new RegExp(UNSAFE.source, 'gu');
const UNSAFE_BEYOND_C0 = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;

/** Why this string cannot be shown as it is, or null. */
export function unsafeTextProblem(s: string): string | null {
  const m = UNSAFE.exec(s);
  if (!m) return null;
  const c = m[0].codePointAt(0)!;
  const name =
    c < 0x20 || c === 0x7f
      ? 'a control character'
      : c <= 0x9f
        ? 'a C1 control character'
        : c === 0x2028 || c === 0x2029
          ? 'a line or paragraph separator'
          : 'a bidirectional-text control';
  return `contains ${name} (U+${c.toString(16).toUpperCase().padStart(4, '0')})`;
}

/**
 * The string with every unsafe character written as an escape (`\x1b`,
 * `\u202e`) and cut to `max` characters: safe for a terminal or a log line
 * and still readable. Escaping twice changes nothing, so each place that
 * prints (error descriptions, the log, state.json, status) escapes on its
 * own without caring what was escaped before.
 */
export function escapeUntrusted(s: string, max = 16384): string {
  const cut = s.length > max ? `${s.slice(0, max)}…` : s;
  return cut.replace(UNSAFE_ALL, (ch) => {
    const c = ch.codePointAt(0)!;
    return c <= 0xff ? `\\x${c.toString(16).padStart(2, '0')}` : `\\u${c.toString(16).padStart(4, '0')}`;
  });
}

/** A string as a JSON literal (quotes, C0 escapes) with the characters JSON leaves raw escaped too: for names that failed a check. */
export function quoteUntrusted(s: string): string {
  return escapeUntrusted(JSON.stringify(s));
}

/** A URL with any user name and password replaced by `***`; text that is not a URL keeps its `//user:pass@` part masked too. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (!u.username && !u.password) return url;
    u.username = '***';
    u.password = '';
    return u.toString();
  } catch {
    return url.replace(/\/\/[^/@\s]*@/g, '//***@');
  }
}

/** Every URL inside a message (git's error text, say) with its userinfo masked. */
export function redactUrlsIn(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/gi, '$1***@');
}

/** What every place that prints or records a message applies: URLs without their userinfo, unsafe characters escaped. */
export function printable(s: string): string {
  return escapeUntrusted(redactUrlsIn(s));
}

/**
 * JSON text with the unsafe characters inside its strings written as
 * `\uXXXX`: the same values for a program, nothing raw for a person who
 * looks at the file (state.json) or the output (`status --json`).
 */
export function safeJson(value: unknown, indent?: number): string {
  // C0 inside strings is escaped by JSON.stringify already; the layout's own line breaks stay
  return JSON.stringify(value, null, indent).replace(
    UNSAFE_BEYOND_C0,
    (ch) => `\\u${ch.codePointAt(0)!.toString(16).padStart(4, '0')}`,
  );
}
