import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCloud, type Cloud } from '../../cloud-broker/cloud.js';
import type { FleetChange } from '../../cloud-broker/fleet/changes.js';
import { silentLogger } from '../../protocol/log.js';
import { missingRedis, type Redis, startRedis } from '../helpers/engines/redis.js';
import { waitFor } from '../helpers/fleet.js';
import { skipForPackage } from '../helpers/requires.js';
import { useTempDir } from '../helpers/temp-dir.js';
import { testDatabase } from '../helpers/test-db.js';
import { TestDevice } from './fleet-helpers.js';

/**
 * Report ingestion with two replicas (docs/scale.md, "Run-once work"): every replica's service
 * subscriber receives every device's report through Redis, so only the lease holder writes it;
 * a report published while no replica holds the lease is not lost, because the replica that takes
 * the lease re-reads the retained reports. Two in-process clouds on one data dir and one Redis;
 * the lease is long and renewed only when the test says (renewMs is huge), so who leads when is
 * decided here, not by timing.
 */
const tmp = useTempDir('outpost-ringest-', 'all');
const missing = missingRedis();
const LEASE = { ttlMs: 600_000, renewMs: 300_000 };

describe.skipIf(skipForPackage(missing))('report ingestion across replicas', () => {
  let redis: Redis;
  let a: Cloud;
  let b: Cloud;
  let device: TestDevice;
  const seen: Record<'a' | 'b', string[]> = { a: [], b: [] };

  beforeAll(async () => {
    redis = await startRedis(tmp.dir);
    const common = {
      dataDir: join(tmp.dir, 'cloud'),
      // One SQLite file in the shared data dir, or one PostgreSQL database (npm run test:pg).
      database: await testDatabase(),
      httpPort: 0,
      redisUrl: redis.url,
      lease: LEASE,
      log: silentLogger,
    };
    a = await startCloud(common);
    b = await startCloud(common);
    for (const [k, c] of [
      ['a', a],
      ['b', b],
    ] as const)
      c.fleet.fleet.changes.watch((ch: FleetChange) => {
        if (ch.kind === 'reported') seen[k].push(ch.report.agentVersion);
      });
    const { agentConfig } = await a.fleet.fleet.provision('ing-1', []);
    // Connected to B, the replica that does not lead.
    device = await new TestDevice(agentConfig).connect(b.mqttUrl!);
  });

  afterAll(async () => {
    await device?.client.endAsync(true);
    await b?.close();
    await a?.close();
    await redis?.stop();
  });

  const report = async (agentVersion: string) => {
    const rep = {
      type: 'reported',
      device: 'ing-1',
      agentVersion,
      appliedRevision: device.last?.revision ?? null,
      time: new Date().toISOString(),
      models: [],
      capabilities: { backends: [{ name: 'onnx', available: true }] },
    };
    await device.client.publishAsync('outpost/v1/devices/ing-1/reported', JSON.stringify(rep), {
      qos: 1,
      retain: true,
    });
  };
  const stored = (c: Cloud) => c.fleet.fleet.reportedOf('ing-1')?.agentVersion ?? null;

  it('both replicas see each report; only the leader writes it; the next leader catches up on what nobody wrote', async () => {
    expect([a.fleet.leadership.isLeader, b.fleet.leadership.isLeader]).toEqual([true, false]);

    await report('r1');
    await waitFor('both replicas got r1', () => seen.a.includes('r1') && seen.b.includes('r1'));
    await waitFor('r1 stored', () => stored(b) === 'r1');

    // The leader stops (and gives the lease up); B has not claimed it yet: nobody writes.
    a.fleet.leadership.stop();
    await report('r2');
    await waitFor('both replicas got r2', () => seen.a.includes('r2') && seen.b.includes('r2'));
    // One more round trip through B's broker, so that a write of r2 would have happened by now.
    await report('r2b');
    await waitFor('both replicas got r2b', () => seen.b.includes('r2b'));
    expect(stored(a)).toBe('r1');

    // B claims the lease: it re-reads the retained report and writes the latest one.
    b.fleet.leadership.renew();
    expect(b.fleet.leadership.isLeader).toBe(true);
    await waitFor('r2b stored by the new leader', () => stored(a) === 'r2b');
    const h = (await (await fetch(`${a.httpUrl}/v1/health`)).json()) as { leader: { replica: string } };
    expect(h.leader.replica).toBe(b.fleet.leadership.replica);
  }, 60_000);
});
