import type { FailureMemo } from './planner.js';
import type { LifecycleEvent } from './lifecycle.js';

/**
 * A rollback command's pin: `model@version` is not applied again while the desired state stays
 * at `revision`; `to` is the kept version the command flipped to. Persisted by SyncState (a
 * restart is not a change of the desired state), applied by the Reconciler.
 */
export interface RollbackPin {
  model: string;
  version: number;
  to: number;
  revision: number | null;
}

export function isPin(v: unknown): v is RollbackPin {
  const p = v as Partial<RollbackPin> | null;
  return (
    typeof p === 'object' &&
    p !== null &&
    typeof p.model === 'string' &&
    Number.isSafeInteger(p.version) &&
    Number.isSafeInteger(p.to) &&
    (p.revision === null || Number.isSafeInteger(p.revision))
  );
}

/** What the planner remembers of a pin: the pinned version is not retried. */
export function pinnedMemo(p: RollbackPin): FailureMemo {
  return { id: p.model, version: p.version, code: 'SYNC_PINNED_BY_ROLLBACK', retryable: false };
}

/** The lifecycle event a pin puts its model in. */
export function rolledBack(p: RollbackPin): LifecycleEvent & { type: 'roll-back' } {
  return {
    type: 'roll-back',
    to: p.to,
    error: { code: 'SYNC_PINNED_BY_ROLLBACK', message: `rolled back from ${p.version} to ${p.to} by command` },
  };
}
