import { describe, expect, it } from 'vitest';
import { DeviceEvents, EVENTS_PER_DEVICE } from '../../cloud-broker/fleet/device-events.js';
import { hardwareOf } from '../../cloud-broker/fleet/fleet-view.js';
import { RECENT_SAMPLES, TelemetryHistory } from '../../cloud-broker/fleet/telemetry-history.js';
import { parseFleetQuery } from '../../cloud-broker/http/fleet-view-routes.js';
import { parseEvent } from '../../cloud-broker/ui/app/sse.js';
import type { ReportedState } from '../../protocol/reported-state.js';
import type { TelemetrySample } from '../../protocol/telemetry.js';

function sample(cpu: number, temps: number[] = [50]): TelemetrySample {
  return {
    v: 1,
    deviceId: 'd1',
    at: new Date().toISOString(),
    intervalSeconds: 10,
    uptimeSeconds: 100,
    cpu: { loadPercent: cpu, load1: 1, cores: 4 },
    memory: { totalBytes: 1000, availableBytes: 750, usedBytes: 250 },
    process: { rssBytes: 1, heapUsedBytes: 1, cpuPercent: 1 },
    temperatures: temps.map((celsius, i) => ({ sensor: `t${i}`, celsius })),
    disk: { path: '/', totalBytes: 200, freeBytes: 50 },
    models: [{ model: 'a/b', version: 1, count: 3, errors: 1, total: 3, totalErrors: 1, latencyMs: null }],
  };
}

describe('TelemetryHistory', () => {
  const t0 = Date.parse('2026-01-01T10:00:00Z');
  const at = (ms: number): string => new Date(t0 + ms).toISOString();

  it('keeps shares, the hottest sensor and inference counts per point', () => {
    const h = new TelemetryHistory();
    h.add('d1', sample(40, [40, 61.5]), at(0));
    expect(h.points('d1', 'recent')).toEqual([
      { at: at(0), cpu: 40, memory: 25, temperature: 61.5, disk: 75, inferences: 3, errors: 1 },
    ]);
    h.add('d1', sample(10, []), at(1000));
    expect(h.points('d1', 'recent')[1].temperature).toBeNull();
  });

  it('averages into 1-minute buckets for the hour, sums counts, and drops what is older than the window', () => {
    const h = new TelemetryHistory();
    h.add('d1', sample(20), at(0));
    h.add('d1', sample(40), at(30_000));
    h.add('d1', sample(90), at(60_000));
    const hour = h.points('d1', 'hour', t0 + 60_000);
    expect(hour.map((p) => [p.cpu, p.inferences])).toEqual([
      [30, 6],
      [90, 3],
    ]);
    expect(h.points('d1', 'hour', t0 + 60 * 60_000)).toHaveLength(1);
    expect(h.points('d1', 'hour', t0 + 2 * 3600_000)).toEqual([]);
    expect(h.points('d1', 'day', t0 + 2 * 3600_000)).toHaveLength(1);
  });

  it('keeps at most RECENT_SAMPLES raw samples and forgets a removed device', () => {
    const h = new TelemetryHistory();
    for (let i = 0; i < RECENT_SAMPLES + 5; i++) h.add('d1', sample(i), at(i * 1000));
    const recent = h.points('d1', 'recent');
    expect(recent).toHaveLength(RECENT_SAMPLES);
    expect(recent[0].cpu).toBe(5);
    h.forget('d1');
    expect(h.points('d1', 'recent')).toEqual([]);
  });
});

describe('DeviceEvents', () => {
  const report = (models: ReportedState['models']): ReportedState => ({
    type: 'reported',
    device: 'd1',
    agentVersion: '1.0.0',
    appliedRevision: 1,
    time: '2026-01-01T00:00:00Z',
    models,
    capabilities: { backends: [] },
  });
  const at = '2026-01-01T00:00:00Z';

  it('records transitions once, with the error code of a failure, newest first', () => {
    const e = new DeviceEvents();
    e.observe({ kind: 'status', device: 'd1', status: 'online', at });
    e.observe({ kind: 'status', device: 'd1', status: 'online', at });
    const dl = {
      id: 'a/b',
      version: 2,
      activeVersion: 1,
      state: 'downloading' as const,
      progress: { bytes: 1, total: 9 },
    };
    e.observe({ kind: 'reported', device: 'd1', report: report([dl]), at });
    e.observe({ kind: 'reported', device: 'd1', report: report([{ ...dl, progress: { bytes: 5, total: 9 } }]), at });
    e.observe({
      kind: 'reported',
      device: 'd1',
      report: report([
        {
          id: 'a/b',
          version: 2,
          activeVersion: 1,
          state: 'failed',
          error: { code: 'FETCH_HASH_MISMATCH', message: 'bad' },
        },
      ]),
      at,
    });
    e.observe({ kind: 'reported', device: 'd1', report: report([]), at });
    expect(e.list('d1').map((x) => [x.text, x.code])).toEqual([
      ['a/b removed', undefined],
      ['a/b v2 failed: bad', 'FETCH_HASH_MISMATCH'],
      ['a/b v2 downloading', undefined],
      ['agent 1.0.0 reporting', undefined],
      ['went online', undefined],
    ]);
  });

  it('keeps at most EVENTS_PER_DEVICE per device', () => {
    const e = new DeviceEvents();
    for (let i = 0; i < EVENTS_PER_DEVICE + 10; i++) e.observe({ kind: 'desired', device: 'd1', at });
    expect(e.list('d1')).toHaveLength(EVENTS_PER_DEVICE);
  });
});

describe('parseFleetQuery', () => {
  const q = (s: string) => parseFleetQuery(new URLSearchParams(s));

  it('takes paging and filters with defaults', () => {
    expect(q('')).toEqual({ offset: 0, limit: 50 });
    expect(q('offset=50&limit=200&tag=lobby&state=failed&model=acme/det&q=cam')).toEqual({
      offset: 50,
      limit: 200,
      tag: 'lobby',
      state: 'failed',
      model: 'acme/det',
      q: 'cam',
    });
  });

  it('refuses bad values and unknown keys with BAD_REQUEST or the field code', () => {
    for (const s of ['limit=201', 'limit=x', 'offset=-1', 'state=asleep', 'color=red', `q=${'x'.repeat(65)}`])
      expect(() => q(s), s).toThrowError(expect.objectContaining({ code: 'BAD_REQUEST' }));
    expect(() => q('tag=no spaces')).toThrowError(expect.objectContaining({ code: 'TAG_INVALID' }));
  });
});

describe('the page’s SSE parser and host facts', () => {
  it('reads event and data lines and skips comments', () => {
    expect(parseEvent('event: change\ndata: {"a":1}')).toEqual({ event: 'change', data: '{"a":1}' });
    expect(parseEvent(': ping')).toBeNull();
    expect(parseEvent('data: a\ndata: b')).toEqual({ event: 'message', data: 'a\nb' });
  });

  it('names the hardware a probe found, and nothing on a plain host', () => {
    expect(
      hardwareOf({ jetson: { model: 'NVIDIA Jetson Xavier NX', jetpack: '5.1' }, tensorrt: '8.5.2', hailo: [] }),
    ).toEqual(['NVIDIA Jetson Xavier NX (JetPack 5.1)', 'TensorRT 8.5.2']);
    expect(hardwareOf({ jetson: null, tensorrt: null, cuda: null, hailo: [], myriad: [], opencv: null })).toEqual([]);
  });
});
