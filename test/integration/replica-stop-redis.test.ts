import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../agent/daemon/index.js';
import type { FleetPage } from '../../cloud-broker/fleet/fleet-view.js';
import type { AgentConfig } from '../../protocol/agent-config.js';
import { silentLogger } from '../../protocol/log.js';
import { topics } from '../../protocol/topics.js';
import { missingRedis, type Redis, startRedis } from '../helpers/engines/redis.js';
import { waitFor } from '../helpers/fleet.js';
import { startReplicaDevice } from '../helpers/replica-device.js';
import { skipForPackage } from '../helpers/requires.js';
import { cloudProcess, type CloudProcess, freePort } from '../helpers/rollout-fleet.js';
import { useTempDir } from '../helpers/temp-dir.js';
import { testDatabase } from '../helpers/test-db.js';

/**
 * A replica on `--redis` stops cleanly (docs/scale.md, "Stopping a replica"). Real `outpost cloud
 * start` processes on one database and one Redis; on replica A, the real agent and a dozen more
 * device sessions (mqtt.js, persistent, QoS 1 subscriptions, a retained Last Will each, as the
 * agent has), while replica B keeps running on the same Redis. SIGTERM to A must end with exit
 * code 0 and none of: an unhandled rejection (ioredis "Connection is closed." from a command sent
 * as Redis closed under the devices' wills), a failed cleanup. It did not, before the close order
 * in cloud-broker/broker/cluster-close.ts: the wills are published as aedes closes its clients, so
 * the emitter's QUIT and the persistence's disconnect met commands still in flight.
 */
const tmp = useTempDir('outpost-stop-redis-', 'all');
const missing = missingRedis();
const SESSIONS = 12;
const CYCLES = 2;

describe.skipIf(skipForPackage(missing))('stopping a --redis replica', () => {
  let redis: Redis;
  let a: CloudProcess;
  let b: CloudProcess;
  let mqttA: string;
  const daemons: Daemon[] = [];
  const sessions: mqtt.MqttClient[] = [];

  beforeAll(async () => {
    redis = await startRedis(tmp.dir);
    const database = (await testDatabase()) ?? join(tmp.dir, 'shared.db');
    const opts = { args: ['--host', '127.0.0.1', '--redis', redis.url], database, env: { OUTPOST_LOG_LEVEL: 'info' } };
    const port = await freePort();
    mqttA = `mqtt://127.0.0.1:${port}`;
    a = await cloudProcess(join(tmp.dir, 'host-a'), tmp.dir, { ...opts, mqttPort: port });
    b = await cloudProcess(join(tmp.dir, 'host-b'), tmp.dir, opts);
  }, 180_000);

  afterAll(async () => {
    for (const s of sessions) s.end(true);
    for (const d of daemons) await d.stop({ graceMs: 2000 }).catch(() => undefined);
    await a?.stop();
    await b?.stop();
    await redis?.stop();
  });

  const online = async (id: string): Promise<boolean> => {
    const r = await fetch(`${b.http}/v1/fleet/devices?limit=100`, { headers: { authorization: `Bearer ${b.token}` } });
    return ((await r.json()) as FleetPage).devices.some((d) => d.device === id && d.status === 'online');
  };

  async function session(cfg: AgentConfig): Promise<mqtt.MqttClient> {
    const c = mqtt.connect(mqttA, {
      clientId: cfg.deviceId,
      username: cfg.credentials.username,
      password: cfg.credentials.token,
      clean: false,
      reconnectPeriod: 0,
      will: { topic: topics.status(cfg.deviceId), payload: Buffer.from('{"state":"offline"}'), qos: 1, retain: true },
    });
    c.on('error', () => undefined); // the replica going away is the point
    await new Promise<void>((resolve, reject) => {
      c.once('connect', () => resolve());
      c.once('error', reject);
    });
    await c.subscribeAsync([topics.desired(cfg.deviceId), topics.commands(cfg.deviceId)], { qos: 1 });
    return c;
  }

  it('exits 0 with no unhandled error while devices with wills and persistent sessions are on it', async () => {
    const agentConfig = (await b.fleet.provision('stop-agent', ['stop'])).agentConfig as unknown as AgentConfig;
    const configs: AgentConfig[] = [];
    for (let i = 0; i < SESSIONS; i++)
      configs.push((await b.fleet.provision(`stop-${i}`, ['stop'])).agentConfig as unknown as AgentConfig);
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const daemon = await startReplicaDevice(join(tmp.dir, `agent-${cycle}`), agentConfig, silentLogger, mqttA);
      daemons.push(daemon);
      for (const cfg of configs) sessions.push(await session(cfg));
      // Its reports crossed Redis to replica B: the cluster is in use, not only connected.
      await waitFor('the agent on replica A is online in the fleet', () => online('stop-agent'));

      const run = await a.stop();
      expect(run, 'replica A had exited before it was asked to stop').not.toBeNull();
      const out = run!.stdout + run!.stderr;
      expect(out).not.toMatch(/Connection is closed|[Uu]nhandled|cleanup failed|closing .* failed/);
      expect(out).toContain('cloud stopped');
      expect(run!.code, out).toBe(0);

      for (const s of sessions.splice(0)) s.end(true);
      await daemon.stop({ graceMs: 2000 });
      await a.start();
    }
  }, 180_000);
});
