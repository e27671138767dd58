import { describe, expect, it } from 'vitest';
import { ownRunMicros } from '../../agent/runtime/backends/onnx.js';

/**
 * The placement trial's own-run measure (agent/runtime/backends/onnx.ts): onnxruntime-node runs a
 * session synchronously inside a setImmediate callback; the measure must count that callback and
 * not the event loop's other callbacks, and must give up when the run finishes elsewhere.
 */
const spin = (ms: number) => {
  const end = process.hrtime.bigint() + BigInt(Math.round(ms * 1e6));
  while (process.hrtime.bigint() < end);
};

/** Like onnxruntime-node's run: the work in a setImmediate callback of its own. */
const ortLikeRun = (ms: number) => () =>
  new Promise<void>((resolve) =>
    setImmediate(() => {
      spin(ms);
      resolve();
    }),
  );

describe('ownRunMicros', () => {
  it('counts the run, not the callbacks queued before or after it (another model loading beside it)', async () => {
    setImmediate(() => spin(20)); // queued before: another session's creation
    const own = ownRunMicros(ortLikeRun(2));
    setImmediate(() => spin(20)); // queued after
    const t = process.hrtime.bigint();
    await own.done;
    const wall = Number(process.hrtime.bigint() - t) / 1e3;
    const micros = await own.micros;
    expect(wall).toBeGreaterThan(20_000);
    expect(micros).toBeGreaterThanOrEqual(2_000);
    expect(micros).toBeLessThan(15_000);
  });

  it('says Infinity when the run did not finish between the markers (work done elsewhere)', async () => {
    const late = ownRunMicros(() => new Promise<void>((resolve) => setTimeout(resolve, 5)));
    await late.done;
    expect(await late.micros).toBe(Number.POSITIVE_INFINITY);
    // Finished before the first marker ran (a timer while the loop was blocked): not the run either.
    const early = ownRunMicros(() => new Promise<void>((resolve) => setTimeout(resolve, 1)));
    spin(5);
    await early.done;
    expect(await early.micros).toBe(Number.POSITIVE_INFINITY);
  });
});
