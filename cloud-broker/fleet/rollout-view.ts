import type { Fleet } from './fleet.js';
import type { RolloutRecord } from './rollout-store.js';
import type { RolloutCounts, RolloutDeviceView, RolloutSummary, RolloutView } from './rollout-types.js';

/**
 * The JSON of a rollout (rollout-types.ts): its records joined with what each device reports
 * now. Read-only.
 */
export function summaryOf(f: Fleet, r: RolloutRecord): RolloutSummary {
  const c = f.rollouts.counts(r.id);
  const n = (s: string): number => c.byState[s] ?? 0;
  const counts: RolloutCounts = {
    total: c.total,
    pending: n('pending'),
    sent: n('sent'),
    soaking: n('soaking'),
    succeeded: n('succeeded'),
    failed: c.failed,
    rolledBack: n('rolled-back'),
    cancelled: n('cancelled'),
    skipped: n('skipped'),
  };
  const batches = f.rollouts.batches(r.id);
  const current = batches.find((b) => b.state === 'pending' || b.state === 'in-progress');
  return {
    id: r.id,
    state: r.state,
    reason: r.reason,
    rolledBack: r.rolledBack,
    target: r.target,
    app: r.app,
    models: r.models,
    policy: r.policy,
    createdBy: r.createdBy,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    finishedAt: r.finishedAt,
    currentBatch: r.state === 'done' || r.state === 'aborted' ? null : (current?.index ?? null),
    batchCount: batches.length,
    counts,
  };
}

export function viewOf(f: Fleet, r: RolloutRecord): RolloutView {
  const devices = f.rollouts.devices(r.id);
  const batches = f.rollouts.batches(r.id).map((b) => ({
    ...b,
    devices: devices
      .filter((d) => d.batch === b.index)
      .map((d): RolloutDeviceView => {
        const rep = f.reportedOf(d.device);
        return {
          device: d.device,
          batch: d.batch,
          state: d.state,
          since: d.since,
          sentAt: d.sentAt,
          revision: d.revision,
          soakUntil:
            d.state === 'soaking' && d.soakStartedAt
              ? new Date(Date.parse(d.soakStartedAt) + r.policy.soakSeconds * 1000).toISOString()
              : null,
          models: r.models.map((m) => {
            const x = rep?.models.find((y) => y.id === m.model);
            return {
              model: m.model,
              version: m.version,
              active: x?.activeVersion ?? null,
              state: x?.state ?? 'unreported',
            };
          }),
          error: d.error,
        };
      }),
  }));
  return { ...summaryOf(f, r), batches };
}
