/**
 * A leak check's measurement: runs `step(i)` `iterations` times and returns how much RSS grew
 * (MB) from after the first `warmup` steps (allocator arenas, V8 code, pools warm) to the end,
 * with a full gc at both points, so garbage V8 has not yet collected (outputs left to the
 * collector, say) does not read as growth: that made the image leak check swing 20-26 MB
 * against its 24 MB bound between CI runs. The test workers do not run with --expose-gc, so the
 * gc function is asked for from V8 (the flag set at run time, then read in a new context).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

function fullGc(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed;
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

export async function rssGrowthMb(
  iterations: number,
  warmup: number,
  step: (i: number) => Promise<void>,
): Promise<number> {
  const gc = fullGc();
  let base = 0;
  for (let i = 0; i < iterations; i++) {
    if (i === warmup) {
      gc();
      base = process.memoryUsage().rss;
    }
    await step(i);
  }
  gc();
  return (process.memoryUsage().rss - base) / 2 ** 20;
}
