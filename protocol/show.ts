/** A value as an error message quotes it: its JSON, cut to `max` characters with "...". */
export function show(v: unknown, max = 80): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > max ? s.slice(0, max - 3) + '...' : s;
}
