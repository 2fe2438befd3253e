/**
 * One row per thing measured: our number, the alternative's number measured
 * in the same run, the ratio (ours / theirs), and the target from the issue.
 * Rendered as one markdown table and written as JSON.
 */
export type Unit = 'ms' | 'bytes' | 'MB/s' | 'count' | 'x' | 'req/s';

export interface Row {
  scenario: string;
  measure: string;
  unit: Unit;
  /** Median over the repetitions (null: not measured). */
  ours: number | null;
  /** What the alternative is, e.g. "git clone --mirror (git daemon)". */
  theirsLabel: string;
  theirs: number | null;
  /** The target, in words (e.g. "ours/theirs <= 1.10"). */
  target?: string;
  /** Whether the target is met; null when there is no target or no number. */
  met?: boolean | null;
  note?: string;
  samples?: { ours: number[]; theirs: number[] };
}

export function median(xs: number[]): number | null {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

export function percentile(xs: number[], p: number): number | null {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  return v[Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1))]!;
}

export function ratio(r: Row): number | null {
  if (r.ours === null || r.theirs === null || r.theirs === 0) return null;
  return r.ours / r.theirs;
}

export function fmt(v: number | null, unit: Unit): string {
  if (v === null || !Number.isFinite(v)) return '–';
  switch (unit) {
    case 'ms':
      return v >= 10_000
        ? `${(v / 1000).toFixed(1)} s`
        : v >= 1000
          ? `${(v / 1000).toFixed(2)} s`
          : `${v.toFixed(v < 10 ? 1 : 0)} ms`;
    case 'bytes':
      return v >= 1 << 30
        ? `${(v / 2 ** 30).toFixed(2)} GiB`
        : v >= 1 << 20
          ? `${(v / 2 ** 20).toFixed(1)} MiB`
          : v >= 1024
            ? `${(v / 1024).toFixed(1)} KiB`
            : `${v} B`;
    case 'MB/s':
      return `${v.toFixed(0)} MB/s`;
    case 'req/s':
      return `${v.toFixed(0)} req/s`;
    case 'x':
      return `${v.toFixed(3)}x`;
    case 'count':
      return Number.isInteger(v) ? String(v) : v.toFixed(1);
  }
}

export function renderTable(rows: Row[]): string {
  const out = [
    '| Scenario | Measure | bundlemirror | Alternative (same run) | Theirs | Ours / theirs | Target | Met |',
    '|---|---|---:|---|---:|---:|---|:---:|',
  ];
  for (const r of rows) {
    const q = ratio(r);
    const met = r.met === true ? 'yes' : r.met === false ? '**no**' : '';
    const measure = r.note ? `${r.measure} (${r.note})` : r.measure;
    out.push(
      `| ${r.scenario} | ${measure} | ${fmt(r.ours, r.unit)} | ${r.theirsLabel || '–'} | ${fmt(r.theirs, r.unit)} | ${q === null ? '–' : q.toFixed(2)} | ${r.target ?? ''} | ${met} |`,
    );
  }
  return out.join('\n');
}
