import type { DesiredSigned } from '../../protocol/desired-state.js';
import type { ModelState, ReportedState } from '../../protocol/reported-state.js';
import type { DeviceRecord } from './types.js';

export interface RolloutModel {
  id: string;
  /** What the cloud wants (null: the device reports a model no longer desired). */
  desired: number | null;
  /** What the device serves, from its last report. */
  active: number | null;
  state: ModelState | 'unreported';
  progress?: { bytes: number; total: number };
  error?: { code: string; message: string };
}

export interface RolloutDevice {
  device: string;
  tags: string[];
  status: 'online' | 'offline' | null;
  revision: number;
  appliedRevision: number | null;
  agentVersion: string | null;
  reportedAt: string | null;
  /** True when the device applied the newest revision and every desired model is active. */
  converged: boolean;
  models: RolloutModel[];
  /** The device refused the last desired-state document it received, and why. */
  desiredError?: { code: string; message: string };
}

/** Joins what the cloud signed with what the device reported. Pure. */
export function rolloutOf(
  device: DeviceRecord,
  desired: DesiredSigned | null,
  reported: ReportedState | null,
): RolloutDevice {
  const rep = new Map((reported?.models ?? []).map((m) => [m.id, m]));
  const models: RolloutModel[] = [];
  for (const d of desired?.models ?? []) {
    const r = rep.get(d.id);
    rep.delete(d.id);
    const m: RolloutModel = {
      id: d.id,
      desired: d.version,
      active: r?.activeVersion ?? null,
      state: r ? r.state : 'unreported',
    };
    // A report about an older desired version says nothing about this one's progress.
    if (r && r.version !== d.version && r.state !== 'failed') m.state = 'pending';
    if (r?.progress && r.version === d.version) m.progress = r.progress;
    if (r?.error) m.error = r.error;
    models.push(m);
  }
  for (const r of rep.values()) {
    models.push({
      id: r.id,
      desired: null,
      active: r.activeVersion,
      state: r.state,
      ...(r.error ? { error: r.error } : {}),
    });
  }
  const converged =
    desired !== null &&
    reported !== null &&
    reported.appliedRevision === desired.revision &&
    desired.models.every((d) => models.some((m) => m.id === d.id && m.active === d.version && m.state === 'active'));
  return {
    device: device.id,
    tags: device.tags,
    status: device.status,
    revision: device.revision,
    appliedRevision: reported?.appliedRevision ?? null,
    agentVersion: reported?.agentVersion ?? null,
    reportedAt: device.reportedAt,
    converged,
    models,
    ...(reported?.desiredError ? { desiredError: reported.desiredError } : {}),
  };
}
