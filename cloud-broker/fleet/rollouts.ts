import { OutpostError } from '../../protocol/errors/index.js';
import { moduleLogger, type Logger } from '../../protocol/log.js';
import { SCHEDULER_ACTOR, type Actor } from './audit-store.js';
import { targets } from './desired.js';
import type { DeployResult, DeploySpec, Fleet, SignFn } from './fleet.js';
import { formBatches, type RolloutPolicy } from './rollout-policy.js';
import type { RolloutRecord } from './rollout-store.js';
import type { RolloutEnd } from './rollout-step.js';
import type { RolloutState, RolloutSummary, RolloutView } from './rollout-types.js';
import { summaryOf, viewOf } from './rollout-view.js';
import { describeTarget, type Target } from './types.js';

/**
 * Staged rollouts: creation, the operator's pause / resume / abort, and how a rollout ends
 * (done, paused on failures, aborted with or without rollback). Every change runs in
 * `fleet.transact`, so it is serialised with the scheduler's steps and commits together with
 * the desired states it re-signs and its audit entry.
 */
export const actorName = (a: Actor): string => `${a.kind}/${a.name}`;

export class Rollouts {
  private readonly log: Logger;
  /** Called after a change the scheduler should act on at once (the scheduler sets it). */
  onChange: () => void = () => undefined;

  constructor(
    readonly fleet: Fleet,
    log: Logger,
  ) {
    this.log = moduleLogger(log, 'rollouts');
  }

  /** A staged deploy: the deployments exist at once, but hold only on the devices sent so far. */
  async create(
    spec: DeploySpec,
    targetIn: Target,
    policy: RolloutPolicy,
    actor: Actor,
  ): Promise<DeployResult & { rollout: RolloutSummary }> {
    const f = this.fleet;
    const target = f.parseTarget(targetIn);
    const items = f.resolveDeploy(spec);
    f.refuseBusy(items.map((i) => i.model));
    const res = await f.transact(() => {
      const devices = f.store.listDevices().filter((d) => targets(target, d));
      const batches = formBatches(policy, devices);
      const models = items.map(({ model, version }) => ({ model, version }));
      const at = new Date().toISOString();
      const id = f.rollouts.create(
        { target, app: items[0].app, models, policy, createdBy: actorName(actor) },
        batches,
        at,
      );
      const deployments = items.map((it) => f.store.insertDeployment(target, it.model, it.version, it.app, id));
      f.audit.append(actor, 'deploy', {
        rollout: id,
        devices: devices.map((d) => d.id),
        details: { target, models, app: items[0].app, staged: true, policy, batches: batches.map((b) => b.devices) },
        at,
      });
      return { id, deployments };
    });
    this.log.info({ rollout: res.id, target, items }, `rollout ${res.id} to ${describeTarget(target)} created`);
    this.onChange();
    return { target, deployments: res.deployments, devices: [], rollout: this.summary(res.id) };
  }

  pause(id: number, actor: Actor): Promise<RolloutView> {
    return this.change(id, actor, ['running'], 'pause', (r) => {
      this.fleet.rollouts.update(r.id, { state: 'paused', reason: null }, new Date().toISOString());
    });
  }

  /** Failures counted so far no longer count against the threshold: the operator looked at them. */
  resume(id: number, actor: Actor): Promise<RolloutView> {
    return this.change(id, actor, ['paused'], 'resume', (r) => {
      const forgiven = this.fleet.rollouts.counts(r.id).failed;
      this.fleet.rollouts.update(
        r.id,
        { state: 'running', reason: null, failuresForgiven: forgiven },
        new Date().toISOString(),
      );
      return { failuresForgiven: forgiven };
    });
  }

  abort(id: number, actor: Actor, keep = false): Promise<RolloutView> {
    return this.change(id, actor, ['running', 'paused'], null, (r, sign) => {
      this.end(
        r,
        {
          state: 'aborted',
          reason: { code: 'ROLLOUT_ABORTED_BY_OPERATOR', message: `aborted by ${actorName(actor)}` },
          rollback: !keep,
        },
        actor,
        sign,
      );
    });
  }

  private async change(
    id: number,
    actor: Actor,
    from: readonly RolloutState[],
    action: string | null,
    apply: (r: RolloutRecord, sign: SignFn) => Record<string, unknown> | void,
  ): Promise<RolloutView> {
    await this.fleet.transact((sign) => {
      const r = this.record(id);
      if (!from.includes(r.state))
        throw new OutpostError(
          'ROLLOUT_STATE_CONFLICT',
          `rollout ${id} is ${r.state}; this needs it ${from.join(' or ')}`,
          { rollout: id, state: r.state },
        );
      const details = apply(r, sign) ?? {};
      if (action)
        this.fleet.audit.append(actor, `rollout.${action}`, { rollout: id, details: { from: r.state, ...details } });
    });
    this.onChange();
    return this.view(id);
  }

  /**
   * Ends or pauses a rollout inside the caller's transaction. Done: its deployments hold for
   * every device of the target from now on (devices that joined meanwhile get the version).
   * Aborted: no further device gets it; with rollback the deployments are undone and every
   * device that was sent gets its previous version back in a new, higher revision.
   */
  end(r: RolloutRecord, end: RolloutEnd, actor: Actor, sign: SignFn): void {
    const f = this.fleet;
    const at = new Date().toISOString();
    if (end.state === 'paused') {
      f.rollouts.update(r.id, { state: 'paused', reason: end.reason }, at);
      f.audit.append(actor, 'rollout.pause', { rollout: r.id, details: { reason: end.reason } });
      this.log.warn({ rollout: r.id, reason: end.reason }, `rollout ${r.id} paused`);
      return;
    }
    if (end.state === 'done') {
      f.rollouts.update(r.id, { state: 'done', reason: null, finishedAt: at }, at);
      const { changed } = sign();
      f.audit.append(actor, 'rollout.done', { rollout: r.id, devices: changed, details: { joinedMeanwhile: changed } });
      this.log.info({ rollout: r.id }, `rollout ${r.id} done`);
      return;
    }
    const devices = f.rollouts.devices(r.id);
    for (const b of f.rollouts.batches(r.id))
      if (b.state === 'pending' || b.state === 'in-progress')
        f.rollouts.updateBatch(r.id, b.index, { state: 'cancelled' });
    for (const d of devices)
      if (d.state === 'pending') f.rollouts.updateDevice(r.id, d.device, { state: 'cancelled', since: at });
    f.rollouts.update(r.id, { state: 'aborted', reason: end.reason, finishedAt: at, rolledBack: end.rollback }, at);
    f.audit.append(actor, 'rollout.abort', { rollout: r.id, details: { reason: end.reason, rollback: end.rollback } });
    if (end.rollback) {
      const sent = devices.filter((d) => d.sentAt !== null && d.state !== 'skipped').map((d) => d.device);
      f.store.markRolledBack(f.rollouts.deploymentIds(r.id));
      for (const d of sent) f.rollouts.updateDevice(r.id, d, { state: 'rolled-back', since: at });
      const { changed } = sign(sent);
      f.audit.append(actor, 'rollout.rollback', { rollout: r.id, devices: sent, details: { resigned: changed } });
    }
    this.log.warn({ rollout: r.id, reason: end.reason, rollback: end.rollback }, `rollout ${r.id} aborted`);
  }

  /** The scheduler's actor, for ends it decides. */
  endBySchedule(r: RolloutRecord, end: RolloutEnd, sign: SignFn): void {
    this.end(r, end, SCHEDULER_ACTOR, sign);
  }

  record(id: number): RolloutRecord {
    const r = Number.isSafeInteger(id) && id > 0 ? this.fleet.rollouts.get(id) : null;
    if (!r)
      throw new OutpostError('ROLLOUT_NOT_FOUND', `no rollout ${id}; see \`outpost rollout list\``, { rollout: id });
    return r;
  }

  view(id: number): RolloutView {
    return viewOf(this.fleet, this.record(id));
  }

  summary(id: number): RolloutSummary {
    return summaryOf(this.fleet, this.record(id));
  }

  list(states?: readonly RolloutState[], limit = 100): RolloutSummary[] {
    return this.fleet.rollouts.list(states, limit).map((r) => summaryOf(this.fleet, r));
  }
}
