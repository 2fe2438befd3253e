/**
 * `[schedule "NAME"]` sections are named by their users, so the config
 * reader must tell one from a misspelled section before it guesses.
 */
/** `schedule "night"` -> `night`; null for any other section name. */
export function scheduleSectionName(section: string): string | null {
  const m = /^schedule\s+"([^"]+)"$/.exec(section);
  return m ? m[1]! : null;
}

/** Sections that look like an attempt at a schedule but are spelled otherwise. */
export function looksLikeSchedule(section: string): boolean {
  return /^schedule\b/i.test(section) && scheduleSectionName(section) === null;
}

/**
 * Why an expression cannot be a cron expression by its count of fields, or
 * null. node-schedule tries a string it cannot parse as cron as a date
 * ("2030-01-01" would become a one-off job), so this comes first; its own
 * verdict is cronProblem's (src/replica/daemon/schedule.ts).
 */
export function cronFieldsProblem(expression: string): string | null {
  const fields = expression.trim().split(/\s+/).filter(Boolean);
  if (fields.length >= 5 && fields.length <= 6) return null;
  return `has ${fields.length} field${fields.length === 1 ? '' : 's'}; a cron expression has 5 (minute hour day-of-month month day-of-week) or 6 (seconds first)`;
}
