import { describe, expect, it } from 'vitest';
import type { ReportedState } from '../../protocol/reported-state.js';
import type { TelemetrySample } from '../../protocol/telemetry.js';
import { DEFAULT_POLICY, type RolloutPolicy } from '../../cloud-broker/fleet/rollout-policy.js';
import { decideStep, type Observation } from '../../cloud-broker/fleet/rollout-step.js';
import type { BatchRecord, RolloutDeviceRecord, RolloutRecord } from '../../cloud-broker/fleet/rollout-store.js';

/** The scheduler's decisions, built from hand-made states (the planner-test style). */
const T0 = Date.parse('2026-12-01T10:00:00Z');
const at = (s: number) => new Date(T0 + s * 1000).toISOString();
const START = '2026-12-01T09:00:00.000Z';

function rollout(p: Partial<RolloutPolicy> = {}, state: RolloutRecord['state'] = 'running'): RolloutRecord {
  return {
    id: 1,
    state,
    target: { kind: 'all', value: '*' },
    app: null,
    models: [{ model: 'o/m', version: 2 }],
    policy: { ...DEFAULT_POLICY, soakSeconds: 10, deviceTimeoutSeconds: 30, ...p },
    reason: null,
    rolledBack: false,
    failuresForgiven: 0,
    createdBy: 'admin/admin',
    createdAt: at(0),
    updatedAt: at(0),
    finishedAt: null,
  };
}

function dev(device: string, batch: number, o: Partial<RolloutDeviceRecord> = {}): RolloutDeviceRecord {
  return {
    device,
    batch,
    state: 'pending',
    since: at(0),
    sentAt: null,
    revision: null,
    soakStartedAt: null,
    baseline: null,
    healthRequestedAt: null,
    error: null,
    ...o,
  };
}

const batch = (index: number, state: BatchRecord['state'], size = 1): BatchRecord => ({
  index,
  canary: false,
  size,
  state,
  sentAt: null,
  doneAt: null,
});

function report(active: number | null, o: Partial<ReportedState> = {}): ReportedState {
  return {
    type: 'reported',
    device: 'x',
    agentVersion: '1',
    appliedRevision: 5,
    time: at(1),
    models: [{ id: 'o/m', version: 2, activeVersion: active, state: active === 2 ? 'active' : 'installing' }],
    capabilities: { backends: [] },
    startedAt: START,
    ...o,
  };
}

function telemetry(receivedS: number, total: number, errors: number, startedAt = START): Observation['telemetry'] {
  const sample = {
    v: 1,
    deviceId: 'x',
    at: at(receivedS),
    startedAt,
    models: [{ model: 'o/m', version: 2, count: total, errors, total, totalErrors: errors, latencyMs: null }],
  } as unknown as TelemetrySample;
  return { receivedAt: at(receivedS), sample };
}

const sent = (o: Partial<RolloutDeviceRecord> = {}) => dev('a', 0, { state: 'sent', sentAt: at(0), revision: 5, ...o });
const soaking = (o: Partial<RolloutDeviceRecord> = {}) =>
  sent({
    state: 'soaking',
    soakStartedAt: at(2),
    baseline: { reportedStartedAt: START, telemetryStartedAt: null, counters: {} },
    ...o,
  });

function step(
  r: RolloutRecord,
  batches: BatchRecord[],
  devices: RolloutDeviceRecord[],
  obs: Partial<Observation>,
  nowS: number,
  sentLastMinute = 0,
) {
  const o: Observation = { removed: false, reported: null, telemetry: null, ...obs };
  return decideStep({ rollout: r, batches, devices, observe: () => o, now: T0 + nowS * 1000, sentLastMinute });
}

describe('rollout step', () => {
  it('sends the first batch, at most max-per-minute of it', () => {
    const ds = [dev('a', 0), dev('b', 0), dev('c', 0)];
    const d = step(rollout({ maxPerMinute: 2 }), [batch(0, 'pending', 3)], ds, {}, 0);
    expect(d.send).toEqual({ batch: 0, devices: ['a', 'b'] });
    expect(d.batches).toEqual([{ index: 0, patch: { state: 'in-progress', sentAt: at(0) } }]);
    const full = step(rollout({ maxPerMinute: 2 }), [batch(0, 'in-progress', 3)], ds, {}, 10, 2);
    expect(full.send).toBeNull();
  });

  it('moves a sent device to soaking once it applied the revision and reports the version active', () => {
    expect(step(rollout(), [batch(0, 'in-progress')], [sent()], { reported: report(1) }, 1).devices).toEqual([]);
    const stale = report(2, { appliedRevision: 4 });
    expect(step(rollout(), [batch(0, 'in-progress')], [sent()], { reported: stale }, 1).devices).toEqual([]);
    const d = step(
      rollout(),
      [batch(0, 'in-progress')],
      [sent()],
      { reported: report(2), telemetry: telemetry(0, 7, 1) },
      2,
    );
    expect(d.devices[0].patch).toMatchObject({
      state: 'soaking',
      baseline: { reportedStartedAt: START, counters: { 'o/m@2': { total: 7, totalErrors: 1 } } },
    });
  });

  it('fails a device with its own error code, or on timeout, and aborts beyond the threshold', () => {
    const failed = report(1, {
      models: [
        {
          id: 'o/m',
          version: 2,
          activeVersion: 1,
          state: 'failed',
          error: { code: 'RUNTIME_SMOKE_TEST_FAILED', message: 'm' },
        },
      ],
    });
    const d = step(rollout(), [batch(0, 'in-progress')], [sent()], { reported: failed }, 3);
    expect(d.devices[0].patch).toMatchObject({ state: 'failed', error: { code: 'RUNTIME_SMOKE_TEST_FAILED' } });
    expect(d.end).toMatchObject({ state: 'aborted', rollback: true, reason: { code: 'ROLLOUT_FAILURE_THRESHOLD' } });
    const t = step(rollout({ onFailure: 'pause' }), [batch(0, 'in-progress')], [sent()], { reported: null }, 31);
    expect(t.devices[0].patch.error?.code).toBe('ROLLOUT_DEVICE_TIMEOUT');
    expect(t.end).toMatchObject({ state: 'paused' });
  });

  it('fails a soaking device whose agent restarted or whose inference errors pass the bound', () => {
    const restarted = step(
      rollout(),
      [batch(0, 'in-progress')],
      [soaking()],
      { reported: report(2, { startedAt: at(5) }) },
      6,
    );
    expect(restarted.devices[0].patch.error?.code).toBe('ROLLOUT_AGENT_RESTARTED');
    const errors = step(
      rollout(),
      [batch(0, 'in-progress')],
      [soaking()],
      { reported: report(2), telemetry: telemetry(5, 20, 3) },
      6,
    );
    expect(errors.devices[0].patch.error).toMatchObject({
      code: 'ROLLOUT_INFERENCE_ERRORS',
      message: expect.stringContaining('3 of 20'),
    });
    const few = step(
      rollout(),
      [batch(0, 'in-progress')],
      [soaking()],
      { reported: report(2), telemetry: telemetry(5, 100, 3) },
      6,
    );
    expect(few.devices).toEqual([]);
  });

  it('asks for a health sample when the soak ends, succeeds on a fresh healthy one, then sends the next batch', () => {
    const ask = step(
      rollout(),
      [batch(0, 'in-progress'), batch(1, 'pending')],
      [soaking(), dev('b', 1)],
      { reported: report(2) },
      12,
    );
    expect(ask.requestHealth).toEqual(['a']);
    expect(ask.send).toBeNull();
    const asked = soaking({ healthRequestedAt: at(12) });
    const again = step(
      rollout(),
      [batch(0, 'in-progress'), batch(1, 'pending')],
      [asked, dev('b', 1)],
      { reported: report(2) },
      13,
    );
    expect(again.requestHealth).toEqual([]);
    const ok = step(
      rollout(),
      [batch(0, 'in-progress'), batch(1, 'pending')],
      [asked, dev('b', 1)],
      { reported: report(2), telemetry: telemetry(12.5, 10, 0) },
      13,
    );
    expect(ok.devices[0].patch).toMatchObject({ state: 'succeeded' });
    expect(ok.batches.map((b) => [b.index, b.patch.state])).toEqual([
      [0, 'done'],
      [1, 'in-progress'],
    ]);
    expect(ok.send).toEqual({ batch: 1, devices: ['b'] });
  });

  it('a paused rollout judges devices but sends nothing; every batch done is done; a removed device is skipped', () => {
    const p = step(
      rollout({}, 'paused'),
      [batch(0, 'done'), batch(1, 'pending')],
      [dev('a', 0, { state: 'succeeded' }), dev('b', 1)],
      {},
      1,
    );
    expect(p.send).toBeNull();
    expect(p.end).toBeNull();
    const gone = step(rollout(), [batch(0, 'in-progress')], [sent()], { removed: true }, 1);
    expect(gone.devices[0].patch).toMatchObject({ state: 'skipped' });
    expect(gone.end).toEqual({ state: 'done' });
  });
});
