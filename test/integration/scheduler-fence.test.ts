import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLEET_LEADER, LeaseStore } from '../../cloud-broker/db/lease.js';
import type { RolloutView } from '../../cloud-broker/fleet/rollout-types.js';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';

/**
 * A leader that lost its lease without noticing (paused past its TTL: its renewal has not run
 * yet) steps its scheduler and marks nothing: the step's fence fails inside its transaction. When
 * it takes the lease again it does so under a new epoch and the rollout goes on. A real cloud
 * (in process, on the test engine); another replica's claim is made on the same database with
 * that replica's clock.
 */
let f: TestFleet;
const DEVICES = ['sf-1', 'sf-2'];

beforeAll(async () => {
  f = await startTestFleet();
  await f.publish('acme/fence');
  for (const id of DEVICES) await f.provision(id, ['fence']);
}, 60_000);
afterAll(async () => f?.close());

describe('the scheduler under a lost lease', () => {
  it('a deposed leader that still believes it leads sends no batch; leading again, it does', async () => {
    const cloud = f.cloud.fleet;
    const db = f.cloud.db;
    expect(cloud.leadership.isLeader).toBe(true);
    const mine = new LeaseStore(db).read(FLEET_LEADER)!;
    // Another replica whose clock is past this lease's expiry takes it (a new epoch).
    const other = new LeaseStore(db).claim(FLEET_LEADER, 'other-replica', 60_000, mine.expiresAt);
    expect(other).toMatchObject({ holder: 'other-replica', epoch: mine.epoch + 1 });
    expect(cloud.leadership.isLeader).toBe(true);

    const r = await fetch(`${f.cloud.httpUrl}/v1/deployments`, {
      method: 'POST',
      headers: { authorization: `Bearer ${f.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'acme/fence@1',
        target: { kind: 'tag', value: 'fence' },
        rollout: { batchSize: { count: 1 }, soakSeconds: 0.5, deviceTimeoutSeconds: 30 },
      }),
    });
    expect(r.status).toBe(201);
    const id = ((await r.json()) as { rollout: { id: number } }).rollout.id;
    const before = Object.fromEntries(cloud.fleet.listDevices().map((d) => [d.id, d.revision]));
    await cloud.scheduler.tick();
    const view = (await f.fleet.rolloutView(id)) as RolloutView;
    expect(view.batches.every((b) => b.state === 'pending')).toBe(true);
    expect(view.batches.flatMap((b) => b.devices).every((d) => d.sentAt === null)).toBe(true);
    for (const d of cloud.fleet.listDevices()) expect(d.revision, d.id).toBe(before[d.id]);

    // Its renewal runs: it learns it lost. The other replica gives the lease up; the next claim
    // makes this cloud the leader again, under yet another epoch, and the first batch goes out.
    cloud.leadership.renew();
    expect(cloud.leadership.isLeader).toBe(false);
    expect(new LeaseStore(db).release(FLEET_LEADER, 'other-replica', other!.epoch)).toBe(true);
    cloud.leadership.renew();
    expect(cloud.leadership.isLeader).toBe(true);
    expect(cloud.leadership.leader().epoch).toBe(other!.epoch + 1);
    await cloud.scheduler.tick();
    const sent = (await f.fleet.rolloutView(id)).batches[0]!;
    expect(sent.state).toBe('in-progress');
    expect(sent.devices.every((d) => d.sentAt !== null)).toBe(true);
  }, 60_000);
});
