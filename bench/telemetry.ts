/**
 * Telemetry cost: one sample's wall time, and how much a sample delays the event loop (which
 * is what inference requests feel). Baselines measured in the same run:
 * - the loop's delay with no sampling at all (a 1 ms "inference" timer ticking alone);
 * - systeminformation's own currentLoad() + cpuTemperature(), which Outpost does NOT use for
 *   these fields because they run execSync on Linux (see agent/telemetry/cpu.ts, sensors.ts).
 * Then the RSS and CPU of a process running only the telemetry service at a 1 s interval for
 * OUTPOST_BENCH_SECONDS (default 10; the "one minute" is OUTPOST_BENCH_SECONDS=60).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import si from 'systeminformation';
import { createTelemetry } from '../agent/telemetry/index.js';
import { InferenceStats } from '../agent/telemetry/inference-stats.js';
import { Sampler } from '../agent/telemetry/sampler.js';
import { silentLogger } from '../protocol/log.js';
import type { BenchRow } from './run.js';

const ITER = 40;

function pct(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** Runs `work` ITER times back to back while a 1 ms timer ticks; returns wall ms and loop delay. */
async function measure(
  work: () => Promise<unknown>,
): Promise<{ p50: number; p95: number; syncMax: number; delayP99: number; delayMax: number }> {
  const h = monitorEventLoopDelay({ resolution: 1 });
  const tick = setInterval(() => {}, 1);
  h.enable();
  const times: number[] = [];
  // syncMax: the longest stretch the call holds the loop before returning its promise.
  let syncMax = 0;
  for (let i = 0; i < ITER; i++) {
    const t0 = performance.now();
    const p = work();
    syncMax = Math.max(syncMax, performance.now() - t0);
    await p;
    times.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 5));
  }
  h.disable();
  clearInterval(tick);
  times.sort((a, b) => a - b);
  return {
    p50: pct(times, 0.5),
    p95: pct(times, 0.95),
    syncMax,
    delayP99: h.percentile(99) / 1e6,
    delayMax: h.max / 1e6,
  };
}

export async function run(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-telemetry-'));
  try {
    const stats = new InferenceStats();
    for (let i = 0; i < 5000; i++) stats.recordInference(`acme/m${i % 5}`, 1, i % 40, i % 100 !== 0);
    const sampler = new Sampler({ deviceId: 'bench', modelsDir: dir, stats });
    await sampler.sample(); // warm up module loading and the first reads

    const idle = await measure(async () => {});
    const ours = await measure(() => sampler.sample());
    const theirs = await measure(() => Promise.all([si.currentLoad(), si.cpuTemperature(), si.mem()]));

    // recordInference is on the inference path: its cost per call.
    const n = 1_000_000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) stats.recordInference('acme/hot', 1, i & 63, true);
    const recordNs = ((performance.now() - t0) * 1e6) / n;

    // A process running only telemetry at 1 s: RSS and CPU over the window.
    const seconds = Number(process.env.OUTPOST_BENCH_SECONDS ?? 10);
    const t = createTelemetry({
      deviceId: 'bench',
      modelsDir: dir,
      log: silentLogger,
      telemetry: { intervalSeconds: 1, enabled: true },
      publish: () => {},
    });
    const keep = setInterval(() => {}, 1000);
    const cpu0 = process.cpuUsage();
    const w0 = performance.now();
    t.start();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    t.stop();
    clearInterval(keep);
    const cpu = process.cpuUsage(cpu0);
    const cpuPct = (100 * (cpu.user + cpu.system)) / 1000 / (performance.now() - w0);

    return [
      {
        name: 'one sample (Outpost sampler)',
        metric: 'p50 ms',
        ours: ours.p50,
        baseline: theirs.p50,
        baselineName: 'si currentLoad+cpuTemperature+mem',
        ratio: ours.p50 / theirs.p50,
      },
      {
        name: 'one sample (Outpost sampler)',
        metric: 'p95 ms',
        ours: ours.p95,
        baseline: theirs.p95,
        baselineName: 'si currentLoad+cpuTemperature+mem',
        ratio: ours.p95 / theirs.p95,
      },
      {
        name: 'event-loop delay while sampling',
        metric: 'p99 ms',
        ours: ours.delayP99,
        baseline: idle.delayP99,
        baselineName: 'no sampling',
        ratio: ours.delayP99 / idle.delayP99,
      },
      {
        name: 'event-loop delay while sampling',
        metric: 'max ms',
        ours: ours.delayMax,
        baseline: idle.delayMax,
        baselineName: 'no sampling',
        ratio: ours.delayMax / idle.delayMax,
      },
      {
        name: 'longest synchronous stretch',
        metric: 'max ms',
        ours: ours.syncMax,
        baseline: theirs.syncMax,
        baselineName: 'si currentLoad+cpuTemperature+mem',
        ratio: ours.syncMax / theirs.syncMax,
        note: 'si execSyncs: why cpu/temps bypass it',
      },
      {
        name: 'event-loop delay, systeminformation',
        metric: 'p99 ms',
        ours: theirs.delayP99,
        baseline: idle.delayP99,
        baselineName: 'no sampling',
        ratio: theirs.delayP99 / idle.delayP99,
      },
      { name: 'recordInference', metric: 'ns/call', ours: recordNs },
      { name: `telemetry alone, 1 s interval, ${seconds} s`, metric: 'CPU %', ours: cpuPct, note: 'of one core' },
      {
        name: `telemetry alone, 1 s interval, ${seconds} s`,
        metric: 'RSS MB',
        ours: process.memoryUsage().rss / 1e6,
        note: 'whole bench process',
      },
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
