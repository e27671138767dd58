import type { ModelState } from '../../protocol/reported-state.js';
import type { RolloutPolicy } from './rollout-policy.js';
import type { Target } from './types.js';

/**
 * The JSON shapes of rollouts, plans and the audit trail, as the HTTP API answers them
 * (docs/http-api.md, "Rollouts"). The web page and the CLI read exactly these.
 */

/** running -> paused -> running ... -> done | aborted (docs/rollouts.md has the table). */
export const ROLLOUT_STATES = ['running', 'paused', 'done', 'aborted'] as const;
export type RolloutState = (typeof ROLLOUT_STATES)[number];

export const BATCH_STATES = ['pending', 'in-progress', 'done', 'cancelled'] as const;
export type BatchState = (typeof BATCH_STATES)[number];

/**
 *   pending      not sent yet (its desired state does not carry the version)
 *   sent         the new desired state is signed and published; waiting for the device to activate it
 *   soaking      the device reports the version active; its health is watched for soakSeconds
 *   succeeded    it stayed healthy for the whole soak
 *   failed       activation failed, it timed out, restarted, or raised inference errors (`error` says which)
 *   rolled-back  it had been sent, then the rollout aborted with rollback: its desired state went back
 *   cancelled    never sent: the rollout ended first
 *   skipped      removed from the fleet during the rollout
 */
export const DEVICE_STATES = [
  'pending',
  'sent',
  'soaking',
  'succeeded',
  'failed',
  'rolled-back',
  'cancelled',
  'skipped',
] as const;
export type RolloutDeviceState = (typeof DEVICE_STATES)[number];

export interface RolloutModelRef {
  model: string;
  version: number;
}

export interface ErrorInfo {
  code: string;
  message: string;
}

export interface RolloutDeviceView {
  device: string;
  batch: number;
  state: RolloutDeviceState;
  /** When it entered `state`. */
  since: string;
  sentAt: string | null;
  /** The desired revision that carried the version to it (null before it was sent). */
  revision: number | null;
  /** When its soak ends (null unless soaking). */
  soakUntil: string | null;
  /** Per rollout model, what the device reports now. */
  models: { model: string; version: number; active: number | null; state: ModelState | 'unreported' }[];
  /** Why it counted as a failure; stays set after a rollback. */
  error: ErrorInfo | null;
}

export interface RolloutBatch {
  index: number;
  canary: boolean;
  size: number;
  state: BatchState;
  sentAt: string | null;
  doneAt: string | null;
}

export interface RolloutBatchView extends RolloutBatch {
  devices: RolloutDeviceView[];
}

export interface RolloutCounts {
  total: number;
  pending: number;
  sent: number;
  soaking: number;
  succeeded: number;
  /** Devices that counted as failures (including ones rolled back afterwards). */
  failed: number;
  rolledBack: number;
  cancelled: number;
  skipped: number;
}

export interface RolloutSummary {
  id: number;
  state: RolloutState;
  /** Why it is paused by a failure or aborted; null otherwise. */
  reason: ErrorInfo | null;
  /** True once the devices that took the version were sent back (abort with rollback). */
  rolledBack: boolean;
  target: Target;
  app: string | null;
  models: RolloutModelRef[];
  policy: RolloutPolicy;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  /** The lowest batch not done yet; null when finished. */
  currentBatch: number | null;
  batchCount: number;
  counts: RolloutCounts;
}

export interface RolloutView extends RolloutSummary {
  batches: RolloutBatchView[];
}

export type PlanAction = 'install' | 'keep' | 'remove';

export interface PlanDevice {
  device: string;
  status: 'online' | 'offline' | null;
  /** The batch it would be in (0 = the canary when there is one). */
  batch: number;
  changes: { action: PlanAction; model: string; version: number | null; from: number | null }[];
  /** Bytes it must download: files of the new versions whose hashes its reported versions lack. */
  downloadBytes: number;
  /** Models it cannot run, judged from its reported capabilities; it would fail. */
  incompatible: (ErrorInfo & { model: string })[];
  /** No report yet: capabilities and present versions unknown, so the bytes count everything. */
  unreported: boolean;
}

export interface Plan {
  target: Target;
  models: RolloutModelRef[];
  /** null: a plain deploy (every device at once). */
  policy: RolloutPolicy | null;
  devices: PlanDevice[];
  batches: { index: number; canary: boolean; size: number; devices: string[] }[];
  totals: {
    devices: number;
    install: number;
    keep: number;
    remove: number;
    incompatible: number;
    downloadBytes: number;
  };
}

export interface AuditEntry {
  id: number;
  at: string;
  /** Who: the token's kind and subject (`admin/admin`, `user/alice`), or `system/scheduler`. */
  actor: { kind: string; name: string };
  action: string;
  rollout: number | null;
  devices: string[];
  details: Record<string, unknown>;
}
