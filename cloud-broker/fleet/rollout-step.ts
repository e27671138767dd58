import type { ReportedState } from '../../protocol/reported-state.js';
import type { TelemetrySample } from '../../protocol/telemetry.js';
import { beyondThreshold } from './rollout-policy.js';
import type {
  Baseline,
  BatchPatch,
  BatchRecord,
  DevicePatch,
  RolloutDeviceRecord,
  RolloutRecord,
} from './rollout-store.js';
import type { ErrorInfo, RolloutDeviceState } from './rollout-types.js';

/**
 * One step of a rollout, decided purely from its records and what the devices reported: which
 * devices move (sent -> soaking -> succeeded | failed), which batch is done, which devices are
 * sent next, whether the rollout ends. The scheduler (rollout-scheduler.ts) applies the decision
 * in one transaction. Deciding twice from the same input gives the same decision, and applying
 * a decision makes the next one smaller, so a step repeated after a crash does no harm.
 */
export interface Observation {
  /** Removed from the fleet (or never known). */
  removed: boolean;
  reported: ReportedState | null;
  telemetry: { receivedAt: string; sample: TelemetrySample } | null;
}

export interface StepInput {
  rollout: RolloutRecord;
  batches: BatchRecord[];
  devices: RolloutDeviceRecord[];
  observe: (device: string) => Observation;
  now: number;
  /** Devices of this rollout sent in the last 60 s. */
  sentLastMinute: number;
}

export type RolloutEnd =
  | { state: 'done' }
  | { state: 'aborted'; reason: ErrorInfo; rollback: boolean }
  | { state: 'paused'; reason: ErrorInfo };

export interface AuditNote {
  action: string;
  devices: string[];
  details: Record<string, unknown>;
}

export interface StepDecision {
  devices: { device: string; patch: DevicePatch }[];
  batches: { index: number; patch: BatchPatch }[];
  /** Devices to send now (all of one batch). */
  send: { batch: number; devices: string[] } | null;
  /** Devices whose soak ended without a fresh health sample: ask them for telemetry. */
  requestHealth: string[];
  end: RolloutEnd | null;
  audit: AuditNote[];
  /** The earliest soak end still ahead (ms): a step then judges it without waiting for the timer. */
  wakeAt: number | null;
}

/** How often a device whose soak ended is asked again for its health sample. */
export const HEALTH_REQUEST_EVERY_MS = 5_000;
/** Two start times this close are one start (the two clocks round differently). */
const SAME_START_MS = 1_000;

const TERMINAL: ReadonlySet<RolloutDeviceState> = new Set([
  'succeeded',
  'failed',
  'skipped',
  'rolled-back',
  'cancelled',
]);
const iso = (ms: number): string => new Date(ms).toISOString();

export function decideStep(input: StepInput): StepDecision {
  const { rollout, now } = input;
  const out: StepDecision = {
    devices: [],
    batches: [],
    send: null,
    requestHealth: [],
    end: null,
    audit: [],
    wakeAt: null,
  };
  const devices = input.devices.map((d) => ({ ...d }));
  const batches = input.batches.map((b) => ({ ...b }));

  for (const d of devices) {
    if (TERMINAL.has(d.state)) continue;
    const obs = d.state === 'pending' ? null : input.observe(d.device);
    const patch = obs ? judge(rollout, d, obs, now, out.requestHealth) : null;
    if (!patch) continue;
    Object.assign(d, patch);
    out.devices.push({ device: d.device, patch });
    if (patch.state === 'failed')
      out.audit.push({ action: 'rollout.device-failed', devices: [d.device], details: { error: patch.error } });
  }

  for (const d of devices) {
    if (d.state !== 'soaking' || !d.soakStartedAt) continue;
    const end = Date.parse(d.soakStartedAt) + rollout.policy.soakSeconds * 1000;
    if (end > now && (out.wakeAt === null || end < out.wakeAt)) out.wakeAt = end;
  }
  const failed = devices.filter((d) => d.error !== null).length;
  const succeeded = devices.filter((d) => d.state === 'succeeded').length;
  const open = devices.filter((d) => !TERMINAL.has(d.state)).length;
  if (
    rollout.state === 'running' &&
    beyondThreshold(rollout.policy, failed - rollout.failuresForgiven, succeeded + failed, open === 0)
  ) {
    const reason: ErrorInfo = {
      code: 'ROLLOUT_FAILURE_THRESHOLD',
      message: `${failed} of ${succeeded + failed} finished device(s) failed, more than --max-failures ${fmtCount(rollout.policy.maxFailures)} allows${rollout.failuresForgiven ? ` (${rollout.failuresForgiven} forgiven at the last resume)` : ''}`,
    };
    out.end =
      rollout.policy.onFailure === 'rollback'
        ? { state: 'aborted', reason, rollback: true }
        : { state: 'paused', reason };
    return out;
  }

  for (const b of batches) {
    if (b.state !== 'in-progress') continue;
    const mine = devices.filter((d) => d.batch === b.index);
    if (mine.some((d) => !TERMINAL.has(d.state))) continue;
    const patch: BatchPatch = { state: 'done', doneAt: iso(now) };
    Object.assign(b, patch);
    out.batches.push({ index: b.index, patch });
    out.audit.push({
      action: 'rollout.batch-done',
      devices: mine.map((d) => d.device),
      details: {
        batch: b.index,
        succeeded: mine.filter((d) => d.state === 'succeeded').map((d) => d.device),
        failed: mine.filter((d) => d.error !== null).map((d) => d.device),
      },
    });
  }

  const current = batches.find((b) => b.state !== 'done' && b.state !== 'cancelled');
  if (!current) {
    out.end = { state: 'done' };
    return out;
  }
  if (rollout.state !== 'running') return out;

  // The batch before the current one is done (batches finish in order), so the current one may go.
  const pending = devices.filter((d) => d.batch === current.index && d.state === 'pending');
  const allowance =
    rollout.policy.maxPerMinute === null
      ? pending.length
      : Math.max(0, rollout.policy.maxPerMinute - input.sentLastMinute);
  const send = pending.slice(0, allowance).map((d) => d.device);
  if (send.length === 0 && pending.length > 0) return out;
  if (current.state === 'pending') {
    const patch: BatchPatch = { state: 'in-progress', sentAt: iso(now) };
    out.batches.push({ index: current.index, patch });
  }
  if (send.length > 0) {
    out.send = { batch: current.index, devices: send };
    out.audit.push({
      action: 'rollout.batch-sent',
      devices: send,
      details: {
        batch: current.index,
        canary: current.canary,
        part: pending.length > send.length ? 'partial' : 'rest',
      },
    });
  }
  return out;
}

/** The next state of one sent or soaking device, or null when nothing changed. */
function judge(
  r: RolloutRecord,
  d: RolloutDeviceRecord,
  obs: Observation,
  now: number,
  requestHealth: string[],
): DevicePatch | null {
  const at = iso(now);
  const fail = (error: ErrorInfo): DevicePatch => ({ state: 'failed', since: at, error });
  // A removed device is neither a success nor a failure: it left the fleet.
  if (obs.removed) return { state: 'skipped', since: at };
  const p = r.policy;
  const sentAt = Date.parse(d.sentAt ?? at);
  const rep = obs.reported;
  const fresh = rep !== null && d.revision !== null && (rep.appliedRevision ?? 0) >= d.revision;
  const models = fresh ? modelsOutcome(r, rep) : { active: false, error: null };
  if (models.error) return fail(models.error);
  if (!fresh && rep?.desiredError && Date.parse(rep.time) >= sentAt) return fail(rep.desiredError);

  if (d.state === 'sent') {
    if (models.active) {
      if (p.soakSeconds === 0) return { state: 'succeeded', since: at };
      return { state: 'soaking', since: at, soakStartedAt: at, baseline: baselineOf(r, obs) };
    }
    if (now - sentAt > p.deviceTimeoutSeconds * 1000)
      return fail({
        code: 'ROLLOUT_DEVICE_TIMEOUT',
        message: `not active on ${versions(r)} within ${p.deviceTimeoutSeconds} s of being sent${rep ? '' : ' (it never reported)'}`,
      });
    return null;
  }

  // Soaking: still active, not restarted, inference errors under the bound.
  const soakStart = Date.parse(d.soakStartedAt ?? at);
  const base = d.baseline ?? { reportedStartedAt: null, telemetryStartedAt: null, counters: {} };
  if (restarted(base.reportedStartedAt, rep?.startedAt))
    return fail({
      code: 'ROLLOUT_AGENT_RESTARTED',
      message: `the agent restarted during the soak (started ${rep?.startedAt}, was ${base.reportedStartedAt})`,
    });
  const sample = obs.telemetry && Date.parse(obs.telemetry.receivedAt) >= soakStart ? obs.telemetry : null;
  if (sample) {
    const was = base.telemetryStartedAt ?? base.reportedStartedAt;
    if (restarted(was, sample.sample.startedAt))
      return fail({
        code: 'ROLLOUT_AGENT_RESTARTED',
        message: `the agent restarted during the soak (telemetry: started ${sample.sample.startedAt}, was ${was})`,
      });
    const rate = errorRate(r, base, sample.sample);
    if (rate.errors > 0 && rate.errors / rate.total > p.maxErrorRate)
      return fail({
        code: 'ROLLOUT_INFERENCE_ERRORS',
        message: `${rate.errors} of ${rate.total} inference(s) on ${versions(r)} failed during the soak (bound ${p.maxErrorRate * 100}%)`,
      });
  }
  const soakEnd = soakStart + p.soakSeconds * 1000;
  if (now < soakEnd) return null;
  if (models.active && sample && Date.parse(sample.receivedAt) >= soakEnd) return { state: 'succeeded', since: at };
  if (now - soakEnd > p.deviceTimeoutSeconds * 1000)
    return fail({
      code: 'ROLLOUT_DEVICE_TIMEOUT',
      message: models.active
        ? `sent no telemetry sample within ${p.deviceTimeoutSeconds} s after its soak ended, so its health is unknown`
        : `${versions(r)} was not active again within ${p.deviceTimeoutSeconds} s after its soak ended`,
    });
  const asked = d.healthRequestedAt ? Date.parse(d.healthRequestedAt) : 0;
  if (asked < soakEnd || now - asked >= HEALTH_REQUEST_EVERY_MS) {
    requestHealth.push(d.device);
    return { healthRequestedAt: at };
  }
  return null;
}

/** Whether every rollout model is active at its version, or the first failure among them. */
function modelsOutcome(r: RolloutRecord, rep: ReportedState): { active: boolean; error: ErrorInfo | null } {
  let active = true;
  for (const want of r.models) {
    const m = rep.models.find((x) => x.id === want.model);
    if (m?.state !== 'active' || m.activeVersion !== want.version) active = false;
    if (m && m.version === want.version && (m.state === 'failed' || m.state === 'rolled-back'))
      return {
        active: false,
        error: m.error ?? { code: 'SYNC_PINNED_BY_ROLLBACK', message: `${want.model}@${want.version} was rolled back` },
      };
  }
  return { active, error: null };
}

function baselineOf(r: RolloutRecord, obs: Observation): Baseline {
  const counters: Baseline['counters'] = {};
  for (const want of r.models) {
    const t = obs.telemetry?.sample.models.find((m) => m.model === want.model && m.version === want.version);
    if (t) counters[`${want.model}@${want.version}`] = { total: t.total, totalErrors: t.totalErrors };
  }
  return {
    reportedStartedAt: obs.reported?.startedAt ?? null,
    telemetryStartedAt: obs.telemetry?.sample.startedAt ?? null,
    counters,
  };
}

function restarted(was: string | null | undefined, now: string | undefined): boolean {
  if (!was || !now) return false;
  return Math.abs(Date.parse(now) - Date.parse(was)) > SAME_START_MS;
}

/** Inferences and failures of the rollout's versions since the soak began. */
function errorRate(r: RolloutRecord, base: Baseline, s: TelemetrySample): { errors: number; total: number } {
  let errors = 0;
  let total = 0;
  for (const want of r.models) {
    const t = s.models.find((m) => m.model === want.model && m.version === want.version);
    if (!t) continue;
    const b = base.counters[`${want.model}@${want.version}`] ?? { total: 0, totalErrors: 0 };
    // Totals below the baseline mean a new process (counters restart at 0): count from 0.
    const fromZero = t.total < b.total;
    total += fromZero ? t.total : t.total - b.total;
    errors += fromZero ? t.totalErrors : t.totalErrors - b.totalErrors;
  }
  return { errors, total };
}

function versions(r: RolloutRecord): string {
  return r.models.map((m) => `${m.model}@${m.version}`).join(', ');
}

function fmtCount(c: { count: number } | { percent: number }): string {
  return 'count' in c ? String(c.count) : `${c.percent}%`;
}
