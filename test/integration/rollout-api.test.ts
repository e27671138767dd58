import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEntry, Plan, RolloutView } from '../../cloud-broker/fleet/rollout-types.js';
import { startTestFleet, waitFor, type TestFleet } from '../helpers/fleet.js';

/**
 * The rollout HTTP API against a real cloud and three real (in-process) agent daemons: the JSON
 * shapes docs/http-api.md promises, a plan that moves nothing, a rollout in two batches, the
 * state conflicts of pause/resume/abort. The fault cases run against agent processes in
 * rollout-fleet.test.ts.
 */
let f: TestFleet;
const DEVICES = ['ra-1', 'ra-2', 'ra-3'];

async function call<T>(method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> {
  const r = await fetch(f.cloud.httpUrl + path, {
    method,
    headers: { authorization: `Bearer ${f.adminToken}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, json: (await r.json()) as T };
}

const revisions = () => Object.fromEntries(f.cloud.fleet.fleet.listDevices().map((d) => [d.id, d.revision]));

beforeAll(async () => {
  f = await startTestFleet();
  await f.publish('acme/cls');
  await f.publish('acme/cls', 'classifier', { force: true, labels: ['r', 'g', 'b'] });
  for (const id of DEVICES) {
    await f.provision(id, ['site']);
    await f.startAgent(id);
  }
  await waitFor('all report', () => DEVICES.every((id) => f.cloud.fleet.fleet.reportedOf(id)));
}, 60_000);
afterAll(async () => f?.close());

describe('rollout API (real cloud, real agents)', () => {
  it('a plan shows installs, bytes and batches, and moves no revision', async () => {
    const before = revisions();
    const { status, json } = await call<{ plan: Plan }>('POST', '/v1/plans', {
      model: 'acme/cls@1',
      target: { kind: 'tag', value: 'site' },
      rollout: { canary: { count: 1 }, batchSize: { count: 2 } },
    });
    expect(status).toBe(200);
    const plan = json.plan;
    expect(plan.batches.map((b) => b.size)).toEqual([1, 2]);
    expect(plan.batches[0].canary).toBe(true);
    for (const d of plan.devices) {
      expect(d.changes).toEqual([{ action: 'install', model: 'acme/cls', version: 1, from: null }]);
      expect(d.downloadBytes).toBeGreaterThan(0);
      expect(d.incompatible).toEqual([]);
    }
    expect(plan.totals).toMatchObject({ devices: 3, install: 3, keep: 0, incompatible: 0 });
    expect(revisions()).toEqual(before);
    expect(f.cloud.fleet.fleet.store.liveDeployments()).toEqual([]);
  });

  it('a rollout in a canary and one batch reaches done, batch by batch', async () => {
    const res = await call<{ rollout: { id: number; state: string }; devices: string[] }>('POST', '/v1/deployments', {
      model: 'acme/cls@2',
      target: { kind: 'tag', value: 'site' },
      rollout: { canary: { count: 1 }, batchSize: { count: 2 }, soakSeconds: 0.5, deviceTimeoutSeconds: 30 },
    });
    expect(res.status).toBe(201);
    expect(res.json.devices).toEqual([]);
    const id = res.json.rollout.id;
    // A device that joins the tag mid-rollout keeps what it had (here: no version) until the rollout is done.
    await f.fleet.provision('ra-late', ['site']);
    const lateVersion = () => f.cloud.fleet.fleet.signedOf('ra-late')?.models.find((m) => m.id === 'acme/cls')?.version;
    expect(f.cloud.fleet.fleet.signedOf('ra-late')?.models).toEqual([]);
    const done = await waitFor(
      'rollout done',
      async () => {
        const r = (await call<{ rollout: RolloutView }>('GET', `/v1/rollouts/${id}`)).json.rollout;
        return r.state === 'done' || r.state === 'aborted' ? r : null;
      },
      45_000,
    );
    expect(done.state).toBe('done');
    expect(done.counts).toMatchObject({ total: 3, succeeded: 3, failed: 0 });
    expect(done.batches.flatMap((b) => b.devices.map((d) => d.device))).not.toContain('ra-late');
    expect(lateVersion()).toBe(2);
    const late = (await call<{ entries: AuditEntry[] }>('GET', '/v1/audit?device=ra-late')).json.entries;
    expect(late.map((e) => `${e.actor.kind}/${e.actor.name} ${e.action}`)).toEqual([
      'admin/admin device.provision',
      'system/scheduler rollout.done',
    ]);
    expect(done.batches.map((b) => b.devices.map((d) => d.state))).toEqual([['succeeded'], ['succeeded', 'succeeded']]);
    for (const d of done.batches.flatMap((b) => b.devices))
      expect(d.models[0]).toMatchObject({ version: 2, active: 2 });
    const audit = (await call<{ entries: AuditEntry[] }>('GET', `/v1/audit?rollout=${id}`)).json.entries;
    const steps = audit.map((e) => `${e.action}:${(e.details.batch as number | undefined) ?? ''}`);
    expect(steps.filter((s) => s.startsWith('rollout.batch'))).toEqual([
      'rollout.batch-sent:0',
      'rollout.batch-done:0',
      'rollout.batch-sent:1',
      'rollout.batch-done:1',
    ]);
    expect(audit[0]).toMatchObject({ action: 'deploy', actor: { kind: 'admin', name: 'admin' } });
    expect(audit.at(-1)?.action).toBe('rollout.done');
    const list = (await call<{ rollouts: { id: number }[] }>('GET', '/v1/rollouts?state=done')).json.rollouts;
    expect(list.map((r) => r.id)).toContain(id);
    expect((await call('POST', `/v1/rollouts/${id}/pause`)).status).toBe(409);
    expect((await call<{ code: string }>('GET', '/v1/rollouts/999')).json.code).toBe('ROLLOUT_NOT_FOUND');
  }, 60_000);

  it('refuses a bad policy and a second rollout of a busy model; abort cancels what was not sent', async () => {
    const bad = await call<{ code: string }>('POST', '/v1/deployments', {
      model: 'acme/cls@1',
      target: { kind: 'all' },
      rollout: { canary: { percent: 0 } },
    });
    expect(bad.json.code).toBe('ROLLOUT_POLICY_INVALID');
    // A long soak keeps the canary soaking while the test acts.
    const res = await call<{ rollout: { id: number } }>('POST', '/v1/deployments', {
      model: 'acme/cls@1',
      target: { kind: 'tag', value: 'site' },
      rollout: { canary: { count: 1 }, soakSeconds: 3600 },
    });
    const id = res.json.rollout.id;
    const busy = await call<{ code: string }>('POST', '/v1/deployments', {
      model: 'acme/cls@2',
      target: { kind: 'all' },
    });
    expect(busy.json.code).toBe('ROLLOUT_BUSY');
    const paused = await call<{ rollout: RolloutView }>('POST', `/v1/rollouts/${id}/pause`);
    expect(paused.json.rollout.state).toBe('paused');
    expect((await call('POST', `/v1/rollouts/${id}/pause`)).status).toBe(409);
    const aborted = (await call<{ rollout: RolloutView }>('POST', `/v1/rollouts/${id}/abort`, {})).json.rollout;
    expect(aborted).toMatchObject({
      state: 'aborted',
      rolledBack: true,
      reason: { code: 'ROLLOUT_ABORTED_BY_OPERATOR' },
    });
    expect(aborted.batches[1].devices.map((d) => d.state)).toEqual(['cancelled', 'cancelled', 'cancelled']);
    expect(aborted.batches[0].devices[0].state).toBe('rolled-back');
    const actions = (await call<{ entries: AuditEntry[] }>('GET', `/v1/audit?rollout=${id}`)).json.entries.map(
      (e) => e.action,
    );
    expect(actions).toEqual(expect.arrayContaining(['deploy', 'rollout.pause', 'rollout.abort', 'rollout.rollback']));
  }, 60_000);
});
