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
