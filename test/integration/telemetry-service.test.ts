import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTelemetry } from '../../agent/telemetry/index.js';
import { Sampler } from '../../agent/telemetry/sampler.js';
import { InferenceStats } from '../../agent/telemetry/inference-stats.js';
import { silentLogger } from '../../protocol/log.js';
import { parseTelemetrySample, type TelemetrySample } from '../../protocol/telemetry.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'outpost-telemetry-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function until(pred: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('Sampler on this machine', () => {
  it('produces a valid sample from the real system', async () => {
    const sampler = new Sampler({ deviceId: 'ci-box', modelsDir: dir, stats: new InferenceStats() });
    // Burn a little CPU so the interval has something to measure.
    const end = Date.now() + 50;
    while (Date.now() < end) Math.sqrt(Math.random());
    const s = await sampler.sample();
    expect(parseTelemetrySample(JSON.parse(JSON.stringify(s)))).toEqual(s);
    expect(s.memory.totalBytes).toBeGreaterThan(0);
    expect(s.memory.usedBytes).toBeLessThanOrEqual(s.memory.totalBytes);
    expect(s.process.rssBytes).toBeGreaterThan(0);
    expect(s.cpu.cores).toBeGreaterThanOrEqual(1);
    expect(s.disk?.path).toBe(dir);
    expect(s.disk!.freeBytes).toBeGreaterThan(0);
    expect(s.disk!.freeBytes).toBeLessThanOrEqual(s.disk!.totalBytes);
  });

  it('reports no disk, not a failure, when the models directory is missing', async () => {
    const s = await new Sampler({
      deviceId: 'ci-box',
      modelsDir: join(dir, 'absent'),
      stats: new InferenceStats(),
    }).sample();
    expect(s.disk).toBeNull();
  });
});

describe('createTelemetry', () => {
  it('publishes on its interval with the inferences of each interval, and stops', async () => {
    const got: TelemetrySample[] = [];
    let failOnce = true;
    const t = createTelemetry({
      deviceId: 'ci-box',
      modelsDir: dir,
      log: silentLogger,
      // Below the config's 5 s minimum on purpose: the service takes any interval it is given.
      telemetry: { intervalSeconds: 0.05, enabled: true },
      publish: (s) => {
        if (failOnce) {
          failOnce = false;
          throw new Error('broker away');
        }
        got.push(s);
      },
    });
    t.recordInference('acme/det', 3, 12, true);
    t.recordInference('acme/det', 3, 20, false);
    t.start();
    // The first sample's publish failed; the chain goes on and the totals survive.
    await until(() => got.length >= 2, 'two published samples');
    t.stop();
    const n = got.length;
    const det = got.flatMap((s) => s.models).filter((m) => m.model === 'acme/det');
    expect(det.every((m) => m.total === 2 && m.totalErrors === 1)).toBe(true);
    expect(det.every((m) => m.count === 0)).toBe(true);
    await new Promise((r) => setTimeout(r, 200));
    expect(got.length).toBe(n);
  });

  it('samples on request and applies a reload', async () => {
    const got: TelemetrySample[] = [];
    const t = createTelemetry({
      deviceId: 'ci-box',
      modelsDir: dir,
      log: silentLogger,
      telemetry: { intervalSeconds: 3600, enabled: true },
      publish: (s) => {
        got.push(s);
      },
    });
    t.start();
    t.recordInference('acme/cls', 1, 4, true);
    const s = await t.sampleNow();
    expect(got).toEqual([s]);
    expect(s.models).toEqual([
      {
        model: 'acme/cls',
        version: 1,
        count: 1,
        errors: 0,
        total: 1,
        totalErrors: 0,
        latencyMs: { mean: 4, p50: 4, p95: 4, max: 4 },
      },
    ]);
    t.reconfigure({ intervalSeconds: 0.05, enabled: true });
    await until(() => got.length >= 3, 'samples at the reloaded interval');
    t.reconfigure({ intervalSeconds: 0.05, enabled: false });
    const n = got.length;
    await new Promise((r) => setTimeout(r, 200));
    // At most the sample already in flight when it was disabled lands.
    expect(got.length - n).toBeLessThanOrEqual(1);
    t.stop();
  });
});
