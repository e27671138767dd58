/**
 * A leak check's measurement: runs `step(i)` `iterations` times and returns how much RSS grew
 * (MB) from after the first `warmup` steps (allocator arenas, V8 code, pools warm) to the end,
 * with a gc at both points when node runs with --expose-gc.
 */
export async function rssGrowthMb(
  iterations: number,
  warmup: number,
  step: (i: number) => Promise<void>,
): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc;
  let base = 0;
  for (let i = 0; i < iterations; i++) {
    if (i === warmup) {
      gc?.();
      base = process.memoryUsage().rss;
    }
    await step(i);
  }
  gc?.();
  return (process.memoryUsage().rss - base) / 2 ** 20;
}
