import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InferenceStats } from '../../agent/telemetry/inference-stats.js';
import { readHwmon, readTemperatures, readThermalZones } from '../../agent/telemetry/sensors.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { parseTelemetrySample, type TelemetrySample } from '../../protocol/telemetry.js';

describe('InferenceStats', () => {
  it('counts per model version and resets the interval, not the totals', () => {
    const s = new InferenceStats();
    for (let i = 1; i <= 100; i++) s.recordInference('acme/det', 2, i, true);
    s.recordInference('acme/det', 2, 5000, false);
    s.recordInference('acme/cls', 1, 3, true);
    const first = s.drain();
    const det = first.find((m) => m.model === 'acme/det')!;
    expect(det).toMatchObject({ version: 2, count: 101, errors: 1, total: 101, totalErrors: 1 });
    // Failed inferences do not pollute the latency figures.
    expect(det.latencyMs).toEqual({ mean: 50.5, p50: 51, p95: 96, max: 100 });
    expect(first.find((m) => m.model === 'acme/cls')!.latencyMs).toEqual({ mean: 3, p50: 3, p95: 3, max: 3 });

    s.recordInference('acme/det', 2, 7, true);
    const second = s.drain();
    expect(second.find((m) => m.model === 'acme/det')).toEqual({
      model: 'acme/det',
      version: 2,
      count: 1,
      errors: 0,
      total: 102,
      totalErrors: 1,
      latencyMs: { mean: 7, p50: 7, p95: 7, max: 7 },
    });
    expect(second.find((m) => m.model === 'acme/cls')).toMatchObject({ count: 0, total: 1, latencyMs: null });
  });

  it('keeps memory bounded and the max exact under heavy traffic', () => {
    const s = new InferenceStats();
    for (let i = 0; i < 50_000; i++) s.recordInference('a/b', 1, i % 1000, true);
    s.recordInference('a/b', 1, 12_345, true);
    const [m] = s.drain();
    expect(m.count).toBe(50_001);
    expect(m.latencyMs!.max).toBe(12_345);
    // A uniform sample of 0..999: the median lands near 500 (a wide band: the sample is random).
    expect(m.latencyMs!.p50).toBeGreaterThan(350);
    expect(m.latencyMs!.p50).toBeLessThan(650);
  });

  it('forgets removed versions', () => {
    const s = new InferenceStats();
    s.recordInference('a/b', 1, 1, true);
    s.forget('a/b', 1);
    expect(s.drain()).toEqual([]);
  });
});

describe('sysfs sensors', () => {
  let root: string;
  beforeAll(async () => {
    // The layout of a Jetson Xavier NX (L4T 35), with a disabled zone that reads nonsense.
    root = await mkdtemp(join(tmpdir(), 'outpost-sysfs-'));
    const zones: Array<[string, string]> = [
      ['CPU-therm', '41500'],
      ['GPU-therm', '39000'],
      ['PMIC-Die', '100000'],
      ['AO-therm', '-40000'],
      ['Tboard_tegra', 'garbage'],
    ];
    for (const [i, [type, temp]] of zones.entries()) {
      await mkdir(join(root, 'thermal', `thermal_zone${i}`), { recursive: true });
      await writeFile(join(root, 'thermal', `thermal_zone${i}`, 'type'), type + '\n');
      await writeFile(join(root, 'thermal', `thermal_zone${i}`, 'temp'), temp + '\n');
    }
    await mkdir(join(root, 'thermal', 'cooling_device0'), { recursive: true });
    await mkdir(join(root, 'hwmon', 'hwmon0'), { recursive: true });
    await writeFile(join(root, 'hwmon', 'hwmon0', 'name'), 'coretemp\n');
    await writeFile(join(root, 'hwmon', 'hwmon0', 'temp1_input'), '55000\n');
    await writeFile(join(root, 'hwmon', 'hwmon0', 'temp1_label'), 'Package id 0\n');
    await writeFile(join(root, 'hwmon', 'hwmon0', 'temp2_input'), '53000\n');
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('reads Jetson thermal zones by their type and drops faulty readings', async () => {
    expect(await readThermalZones(join(root, 'thermal'))).toEqual([
      { sensor: 'CPU-therm', celsius: 41.5 },
      { sensor: 'GPU-therm', celsius: 39 },
      { sensor: 'PMIC-Die', celsius: 100 },
    ]);
  });

  it('reads hwmon sensors with their labels', async () => {
    expect(await readHwmon(join(root, 'hwmon'))).toEqual([
      { sensor: 'coretemp/Package id 0', celsius: 55 },
      { sensor: 'coretemp/temp2', celsius: 53 },
    ]);
  });

  it('returns nothing, without failing, where sysfs has no sensors', async () => {
    expect(await readTemperatures({ thermal: join(root, 'none'), hwmon: join(root, 'none') })).toEqual([]);
  });
});

describe('parseTelemetrySample', () => {
  const good = (): TelemetrySample => ({
    v: 1,
    deviceId: 'nano-1',
    at: '2026-01-02T03:04:05.000Z',
    intervalSeconds: 60,
    uptimeSeconds: 3600,
    cpu: { loadPercent: 12.5, load1: 0.4, cores: 4 },
    memory: { totalBytes: 4e9, availableBytes: 3e9, usedBytes: 1e9 },
    process: { rssBytes: 8e7, heapUsedBytes: 2e7, cpuPercent: 1.2 },
    temperatures: [{ sensor: 'GPU-therm', celsius: 39 }],
    disk: { path: '/var/lib/outpost/models', totalBytes: 3e10, freeBytes: 1e10 },
    models: [
      {
        model: 'acme/det',
        version: 2,
        count: 3,
        errors: 0,
        total: 9,
        totalErrors: 1,
        latencyMs: { mean: 20, p50: 19, p95: 30, max: 31 },
      },
    ],
  });

  it('round-trips a sample', () => {
    const s = good();
    expect(parseTelemetrySample(JSON.parse(JSON.stringify(s)))).toEqual(s);
    expect(parseTelemetrySample({ ...s, disk: null, models: [{ ...s.models[0], latencyMs: null }] }).disk).toBeNull();
  });

  it.each([
    [{ v: 2 }, 'telemetry v must be 1'],
    [{ at: 'yesterday' }, 'telemetry at must be an ISO 8601 time'],
    [{ cpu: { loadPercent: -1, load1: 0, cores: 1 } }, 'telemetry cpu.loadPercent must be a number >= 0'],
    [{ temperatures: [{ sensor: '', celsius: 3 }] }, 'telemetry temperatures[0].sensor must be a non-empty string'],
  ])('rejects %j', (patch, message) => {
    let err: unknown;
    try {
      parseTelemetrySample({ ...good(), ...patch });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(OutpostError);
    expect((err as OutpostError).message).toContain(message);
  });
});
