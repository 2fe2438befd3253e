/**
 * One valued option of a command line read without commander (the hook's
 * publish, the cron'd pull), taken as commander takes it: `--name=value`,
 * or a name and the word after it. null when commander must decide: there
 * is no word after it, or that word looks like an option.
 */
export function valuedOptionAt(
  args: readonly string[],
  i: number,
): { name: string; value: string; next: number } | null {
  const arg = args[i]!;
  const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
  if (eq > 0) return { name: arg.slice(0, eq), value: arg.slice(eq + 1), next: i };
  const value = args[i + 1];
  // commander would take an option-looking word as the value; whether that was meant is for it to say
  if (value === undefined || value.startsWith('-')) return null;
  return { name: arg, value, next: i + 1 };
}
