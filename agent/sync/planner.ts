import type { DesiredModel } from '../../protocol/desired-state.js';
import type { InstalledModel } from '../store/store.js';

/**
 * The reconciler's pure planner: (what the device has, what it must have) -> the steps between.
 *
 * Invariants:
 * - Pure and total: no I/O, no clock, no randomness; the same inputs give the same steps, in a
 *   stable order (by model id), so the planner is tested by building states by hand.
 * - Idempotent: planning again from the state that the steps produce yields no steps.
 * - A step never depends on an earlier step of another model: the executor may stop after any
 *   step (cancellation, crash) and the next plan starts from what is on disk.
 * - A (model, version) that failed for a reason that retrying cannot fix (bad signature, hash
 *   mismatch, incompatible) is not retried until the desired state changes; transient failures
 *   (network, disk) are retried by the loop's back-off, not here.
 */

/** The planner reads only which version of which model is wanted. */
type Target = Pick<DesiredModel, 'id' | 'version'>;

export interface FailureMemo {
  id: string;
  version: number;
  code: string;
  retryable: boolean;
}

export type Step =
  | { kind: 'reject'; id: string; version: number; code: string; message: string }
  | { kind: 'install'; id: string; version: number }
  | { kind: 'activate'; id: string; version: number }
  | { kind: 'remove'; id: string };

export interface PlanInput<M extends Target> {
  desired: readonly M[];
  installed: readonly InstalledModel[];
  failures?: readonly FailureMemo[];
  /** The compatibility check: a code and message when this device cannot run the model. */
  incompatible?: (model: M) => { code: string; message: string } | null;
}

export function plan<M extends Target>(input: PlanInput<M>): Step[] {
  const steps: Step[] = [];
  const installed = new Map(input.installed.map((m) => [m.id, m]));
  const desiredIds = new Set(input.desired.map((m) => m.id));
  const stuck = new Set((input.failures ?? []).filter((f) => !f.retryable).map((f) => `${f.id}@${f.version}`));

  for (const model of [...input.desired].sort((a, b) => a.id.localeCompare(b.id))) {
    const have = installed.get(model.id);
    if (have?.current === model.version) continue;
    if (stuck.has(`${model.id}@${model.version}`)) continue;
    const refusal = input.incompatible?.(model) ?? null;
    if (refusal) {
      steps.push({ kind: 'reject', id: model.id, version: model.version, ...refusal });
      continue;
    }
    // A kept version is activated in place (rollback is instant); anything else is installed,
    // and install activates on success.
    if (have?.versions.includes(model.version)) steps.push({ kind: 'activate', id: model.id, version: model.version });
    else steps.push({ kind: 'install', id: model.id, version: model.version });
  }

  for (const have of [...input.installed].sort((a, b) => a.id.localeCompare(b.id))) {
    if (!desiredIds.has(have.id) && have.current !== null) steps.push({ kind: 'remove', id: have.id });
  }
  return steps;
}
