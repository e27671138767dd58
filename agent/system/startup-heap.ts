import { setFlagsFromString } from 'node:v8';

/**
 * Keeps V8's young generation at its initial size while the agent starts, and lets it grow again
 * once the daemon is up.
 *
 * Start-up allocates mostly what lives for the whole run (modules' code and closures, the error
 * catalog, sessions' metadata). V8 doubles the young generation whenever a scavenge finds most of
 * it alive, which start-up triggers several times over, so an idle agent kept a 10-11 MiB young
 * generation (two semi-spaces) it had only needed for objects that were promoted anyway:
 * measured with v8.getHeapSpaceStatistics() 2 s after READY, 10.8 MiB with growth, 2.0 MiB
 * without (docs/systemd.md#footprint). Requests after start (tensors, JSON bodies) are what a
 * bigger young generation is for, so growth is turned back on at the end of startDaemon.
 *
 * `--semi-space-growth-factor` is a V8 flag (default 2), read each time the new space grows,
 * so setting it at run time takes effect; should a later V8 drop it, both calls do nothing.
 */
const DEFAULT_GROWTH_FACTOR = 2;

let held = false;

export function holdYoungGeneration(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
  held = true;
}

export function releaseYoungGeneration(): void {
  setFlagsFromString(`--semi-space-growth-factor=${DEFAULT_GROWTH_FACTOR}`);
  held = false;
}

export function isYoungGenerationHeld(): boolean {
  return held;
}

/**
 * Runs `fn` with the flag as it is during start-up. V8's code cache records a hash of its flags
 * and rejects bytes made under other values, so the entries of files compiled during start-up
 * are made under the same value (agent/system/compile-cache.ts).
 */
export function withYoungGenerationHeld<T>(fn: () => T): T {
  if (held) return fn();
  holdYoungGeneration();
  try {
    return fn();
  } finally {
    releaseYoungGeneration();
  }
}
