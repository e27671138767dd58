/** Small statistics shared by the benchmarks (run.ts skips files starting with `_`). */

/** The p-th percentile (0-100) of an ascending array: nearest rank, no interpolation. */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
