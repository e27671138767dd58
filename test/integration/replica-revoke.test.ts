import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCloud, type Cloud } from '../../cloud-broker/cloud.js';
import type { AgentConfigDraft } from '../../cloud-broker/fleet/provision.js';
import { silentLogger } from '../../protocol/log.js';
import { missingRedis, type Redis, startRedis } from '../helpers/engines/redis.js';
import { skipForPackage } from '../helpers/requires.js';
import { testDatabase } from '../helpers/test-db.js';
import { useTempDir } from '../helpers/temp-dir.js';

/**
 * Device logins are cached per replica (cloud-broker/fleet/auth.ts), so removing a device must
 * reach every replica's cache, not only the database: two in-process clouds on one database and
 * one Redis, the device's login warm in both caches and the device connected to the replica
 * that did not remove it. After `remove` on A, B drops the live connection and both refuse the
 * token at once, long before the cache's TTL (an hour here) would.
 */
const tmp = useTempDir('outpost-revoke-', 'all');
const LIMITS = { broker: { loginCacheTtlMs: 3_600_000 } };

function connect(url: string, cfg: AgentConfigDraft): Promise<mqtt.MqttClient> {
  return mqtt.connectAsync(url, {
    username: cfg.credentials.username,
    password: cfg.credentials.token,
    clientId: cfg.deviceId,
    reconnectPeriod: 0,
    connectTimeout: 5000,
  });
}

/** The CONNACK's refusal code, or 0 when the connection was accepted (and is closed again). */
async function refusal(url: string, cfg: AgentConfigDraft): Promise<number> {
  try {
    await (await connect(url, cfg)).endAsync(true);
    return 0;
  } catch (err) {
    return (err as { code?: number }).code ?? -1;
  }
}

describe.skipIf(skipForPackage(missingRedis()))('revoking a device reaches every replica', () => {
  let redis: Redis;
  let a: Cloud;
  let b: Cloud;
  let cfg: AgentConfigDraft;

  beforeAll(async () => {
    redis = await startRedis(tmp.dir);
    const common = {
      dataDir: join(tmp.dir, 'cloud'),
      database: await testDatabase(),
      httpPort: 0,
      redisUrl: redis.url,
      limits: LIMITS,
      log: silentLogger,
    };
    a = await startCloud(common);
    b = await startCloud(common);
    ({ agentConfig: cfg } = await a.fleet.fleet.provision('rev-1', []));
  });

  afterAll(async () => {
    await b?.close();
    await a?.close();
    await redis?.stop();
  });

  it('closes the device on the other replica and refuses it on both, with both caches warm', async () => {
    // Warm: the second login on each replica is answered from its cache.
    for (const c of [a, b]) {
      expect(await refusal(c.mqttUrl!, cfg)).toBe(0);
      const cached = c.fleet.logins!.counts.cached;
      expect(await refusal(c.mqttUrl!, cfg)).toBe(0);
      expect(c.fleet.logins!.counts.cached).toBe(cached + 1);
    }
    const live = await connect(b.mqttUrl!, cfg);
    const closed = new Promise<void>((resolve) => live.once('close', () => resolve()));

    await a.fleet.fleet.remove('rev-1');
    await closed;
    // 5 = not authorized (MQTT 3.1.1 CONNACK), 4 = bad username or password: either is a refusal.
    expect([4, 5]).toContain(await refusal(a.mqttUrl!, cfg));
    expect([4, 5]).toContain(await refusal(b.mqttUrl!, cfg));
    expect(a.fleet.logins!.size + b.fleet.logins!.size).toBe(0);
    live.end(true);
  });
});
