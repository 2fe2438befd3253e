/**
 * A strict reader of the Prometheus text format (0.0.4) for tests: every
 * line must be a HELP, a TYPE or a sample of a family declared just before,
 * names and labels must be well formed, values must be numbers. Throws on
 * the first line that is not.
 */

export interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface ParsedMetrics {
  types: Map<string, string>;
  samples: ParsedSample[];
  /** The value of the sample with this name and exactly these labels, or undefined. */
  value(name: string, labels?: Record<string, string>): number | undefined;
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)$`);
const LABEL = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)/;

export function parsePrometheus(text: string): ParsedMetrics {
  if (!text.endsWith('\n')) throw new Error('exposition must end with a newline');
  const types = new Map<string, string>();
  const helped = new Set<string>();
  const samples: ParsedSample[] = [];
  let current: string | null = null;
  for (const [i, line] of text.slice(0, -1).split('\n').entries()) {
    const where = `line ${i + 1}: ${JSON.stringify(line)}`;
    let m: RegExpExecArray | null;
    if ((m = new RegExp(`^# HELP (${NAME}) (.*)$`).exec(line))) {
      if (helped.has(m[1]!)) throw new Error(`${where}: second HELP for ${m[1]}`);
      helped.add(m[1]!);
      current = m[1]!;
      continue;
    }
    if ((m = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`).exec(line))) {
      if (types.has(m[1]!)) throw new Error(`${where}: second TYPE for ${m[1]}`);
      if (m[1] !== current) throw new Error(`${where}: TYPE does not follow its HELP`);
      types.set(m[1]!, m[2]!);
      continue;
    }
    if (line.startsWith('#')) throw new Error(`${where}: unexpected comment`);
    m = SAMPLE.exec(line);
    if (!m) throw new Error(`${where}: not a sample`);
    if (m[1] !== current || !types.has(m[1]!)) throw new Error(`${where}: sample outside its family`);
    const labels: Record<string, string> = {};
    let rest = m[2] ?? '';
    while (rest.length) {
      const l = LABEL.exec(rest);
      if (!l) throw new Error(`${where}: bad labels`);
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_x, c: string) => (c === 'n' ? '\n' : c));
      rest = rest.slice(l[0].length);
    }
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    if (Number.isNaN(value) && m[3] !== 'NaN') throw new Error(`${where}: value is not a number`);
    if (types.get(m[1]!) === 'counter' && !m[1]!.endsWith('_total'))
      throw new Error(`${where}: counter name without _total`);
    samples.push({ name: m[1]!, labels, value });
  }
  return {
    types,
    samples,
    value(name, want = {}) {
      const keys = Object.keys(want);
      return samples.find(
        (s) =>
          s.name === name && Object.keys(s.labels).length === keys.length && keys.every((k) => s.labels[k] === want[k]),
      )?.value;
    },
  };
}
