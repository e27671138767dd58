/** Small statistics shared by the benchmarks (run.ts skips files starting with `_`). */

/** The p-th percentile (0-100) of an ascending array: nearest rank, no interpolation. */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * utime + stime in ms from the text of a /proc stat file, a process's or a thread's. The command
 * name may hold spaces and ")", so the fields count from its last ")": utime and stime are the
 * 12th and 13th after it, in USER_HZ ticks (100 a second on Linux).
 */
export function statCpuMs(text: string): number {
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}
