import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../agent/daemon/index.js';
import { startCloud, type Cloud } from '../../cloud-broker/cloud.js';
import { FleetClient } from '../../cloud-broker/fleet/fleet-client.js';
import { createLogger, type Logger, silentLogger } from '../../protocol/log.js';
import { writeModelFolder } from '../fixtures/model-folder.js';
import { cleanEnv, runInProcess } from '../helpers/cli.js';
import { type Haproxy, missingHaproxy, startHaproxy } from '../helpers/engines/haproxy.js';
import { missingRedis, type Redis, startRedis } from '../helpers/engines/redis.js';
import { waitFor } from '../helpers/fleet.js';
import { skipForPackage } from '../helpers/requires.js';
import { startReplicaDevice } from '../helpers/replica-device.js';
import { useTempDir } from '../helpers/temp-dir.js';
import { testDatabase } from '../helpers/test-db.js';

// Two cloud replicas behind haproxy, their brokers joined through a real Redis, one database and
// one blob folder between them. Devices are spread over both replicas (two pinned to each, two
// through the balancer); a deploy through replica A reaches every one of them.
const tmp = useTempDir('outpost-replicas-', 'all');
const missing = missingRedis() ?? missingHaproxy();

describe.skipIf(skipForPackage(missing))('two replicas behind a balancer', () => {
  let redis: Redis;
  let lb: Haproxy;
  const replicas: Cloud[] = [];
  const daemons: Daemon[] = [];
  let admin: string;
  let common: {
    log: Logger;
    dataDir: string;
    database: string | undefined;
    blobDir: string;
    redisUrl: string;
    publicHttpUrl: string;
    publicMqttUrl: string;
  };

  beforeAll(async () => {
    redis = await startRedis(tmp.dir);
    const dataDir = join(tmp.dir, 'cloud');
    const blobDir = join(tmp.dir, 'shared-blobs');
    // The balancer's ports are known before the replicas start (they are advertised to devices),
    // and haproxy's health checks find the replicas once they listen.
    const { closedPort } = await import('../helpers/daemon-process.js');
    const ports = await Promise.all([0, 1, 2, 3].map(() => closedPort()));
    lb = await startHaproxy(tmp.dir, [
      { host: '127.0.0.1', httpPort: ports[0]!, mqttPort: ports[1]! },
      { host: '127.0.0.1', httpPort: ports[2]!, mqttPort: ports[3]! },
    ]);
    common = {
      log: process.env.OUTPOST_TEST_LOG ? createLogger({ level: process.env.OUTPOST_TEST_LOG }) : silentLogger,
      dataDir,
      // One SQLite file in the shared data dir, or one PostgreSQL database (npm run test:pg).
      database: await testDatabase(),
      blobDir,
      redisUrl: redis.url,
      publicHttpUrl: `http://127.0.0.1:${lb.httpPort}`,
      publicMqttUrl: `mqtt://127.0.0.1:${lb.mqttPort}`,
    };
    // One after the other: the first creates the admin token and signing key the second reads.
    replicas.push(await startCloud({ ...common, httpPort: ports[0]!, mqttPort: ports[1]! }));
    replicas.push(await startCloud({ ...common, httpPort: ports[2]!, mqttPort: ports[3]! }));
    admin = (await readFile(replicas[0]!.adminTokenFile, 'utf8')).trim();
  });

  afterAll(async () => {
    for (const d of daemons) await d.stop({ graceMs: 2000 }).catch(() => undefined);
    for (const r of replicas) await r.close();
    await lb?.stop();
    await redis?.stop();
  });

  it('provisions with the advertised URLs, and a deploy through one replica converges devices on both', async () => {
    const [a, b] = replicas as [Cloud, Cloud];
    const viaA = new FleetClient({ url: a.httpUrl, token: admin });
    const viaB = new FleetClient({ url: b.httpUrl, token: admin });

    const modelDir = join(tmp.dir, 'model');
    await writeModelFolder(modelDir, 'classifier', { id: 'admin/colors' });
    const env = cleanEnv({ OUTPOST_CLOUD_URL: b.httpUrl, OUTPOST_TOKEN: admin, HOME: tmp.dir });
    const published = await runInProcess(['model', 'publish', '--json'], { cwd: modelDir, env });
    expect(published.code, published.stderr).toBe(0);

    // Devices 0-1 pinned to replica A's broker, 2-3 to B's, 4-5 through the balancer.
    const pinned = [a.mqttUrl, a.mqttUrl, b.mqttUrl, b.mqttUrl, undefined, undefined];
    for (const [i, mqtt] of pinned.entries()) {
      const id = `dev-${i}`;
      const { agentConfig } = await (i % 2 ? viaB : viaA).provision(id, ['line']);
      expect(agentConfig.cloud.http).toBe(`http://127.0.0.1:${lb.httpPort}`);
      expect(agentConfig.cloud.mqtt).toBe(`mqtt://127.0.0.1:${lb.mqttPort}`);
      daemons.push(await startReplicaDevice(join(tmp.dir, id), agentConfig, common.log.child({ device: id }), mqtt));
    }

    await viaA.deploy({ model: 'admin/colors' }, { kind: 'tag', value: 'line' });
    const activeOn = (d: Daemon) =>
      d.reconciler.report().models.some((m) => m.id === 'admin/colors' && m.state === 'active');
    await waitFor('every device active on admin/colors@1', () => daemons.every(activeOn), 60_000).catch(
      (err: Error) => {
        throw new Error(
          `${err.message}; clients: ${replicas.map((r) => Object.keys((r.fleet.broker!.broker as unknown as { clients: object }).clients).join(',')).join(' / ')}; reports: ${daemons.map((d) => JSON.stringify(d.reconciler.report())).join('\n')}`,
        );
      },
    );

    // Both replicas read the same fleet: each sees every device's report.
    for (const via of [viaA, viaB]) {
      const devices = await via.listDevices();
      expect(devices.map((d) => d.id).sort()).toEqual(pinned.map((_, i) => `dev-${i}`));
    }
  }, 120_000);
});
