import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCloud, type Cloud } from '../../cloud-broker/cloud.js';
import { FleetClient } from '../../cloud-broker/fleet/fleet-client.js';
import { silentLogger } from '../../protocol/log.js';
import { writeModelFolder } from '../fixtures/model-folder.js';
import { cleanEnv, runInProcess } from '../helpers/cli.js';
import { waitFor } from '../helpers/fleet.js';
import { missingDynsec, startDynsecMosquitto, type DynsecMosquitto } from '../helpers/mosquitto-dynsec.js';
import { skipForPackage } from '../helpers/requires.js';
import { useTempDir } from '../helpers/temp-dir.js';
import { testDatabase } from '../helpers/test-db.js';
import { TestDevice } from './fleet-helpers.js';

// The second way of MQTT across replicas: two cloud replicas (one data dir and database) share
// one Mosquitto with dynamic security. Both are dynsec admins on the same response topic, so each
// must pick its own answers out of the other's (correlationData); a device provisioned through one
// replica is served and revoked through the other.
const tmp = useTempDir('outpost-replicas-dynsec-', 'all');
const missing = await missingDynsec();

describe.skipIf(skipForPackage(missing))('two replicas on one Mosquitto with dynamic security', () => {
  let mosq: DynsecMosquitto;
  const replicas: Cloud[] = [];
  const devices: TestDevice[] = [];

  beforeAll(async () => {
    mosq = await startDynsecMosquitto(tmp.dir);
    const common = {
      log: silentLogger,
      dataDir: join(tmp.dir, 'cloud'),
      database: await testDatabase(),
      httpPort: 0,
      externalBroker: { url: mosq.url, ...mosq.admin, admin: 'dynsec' as const },
    };
    // One after the other: the first creates the admin token, signing key and credential key.
    replicas.push(await startCloud(common));
    replicas.push(await startCloud(common));
  }, 60_000);

  afterAll(async () => {
    for (const d of devices) await d.close().catch(() => undefined);
    for (const r of replicas) await r.close();
    await mosq?.stop();
  });

  it('provision through either replica, deploy through one: every device gets its signed state; remove through the other', async () => {
    const [a, b] = replicas as [Cloud, Cloud];
    const admin = (await readFile(a.adminTokenFile, 'utf8')).trim();
    const viaA = new FleetClient({ url: a.httpUrl, token: admin });
    const viaB = new FleetClient({ url: b.httpUrl, token: admin });
    const modelDir = join(tmp.dir, 'model');
    await writeModelFolder(modelDir, 'classifier', { id: 'admin/colors' });
    const env = cleanEnv({ OUTPOST_CLOUD_URL: b.httpUrl, OUTPOST_TOKEN: admin, HOME: tmp.dir });
    const published = await runInProcess(['model', 'publish', '--json'], { cwd: modelDir, env });
    expect(published.code, published.stderr).toBe(0);

    // Provisions from both replicas at once: their $CONTROL answers interleave on one topic.
    const provisioned = await Promise.all(
      ['r-0', 'r-1', 'r-2', 'r-3'].map((id, i) => (i % 2 ? viaB : viaA).provision(id, ['line'])),
    );
    for (const { agentConfig } of provisioned) {
      expect(agentConfig.cloud.mqtt).toBe(mosq.url);
      devices.push(await new TestDevice(agentConfig).connect());
    }
    await viaA.deploy({ model: 'admin/colors' }, { kind: 'tag', value: 'line' });
    await waitFor('every device has admin/colors@1', () => devices.every((d) => d.versionOf('admin/colors') === 1));
    expect(devices.flatMap((d) => d.rejected)).toEqual([]);

    // r-0 was provisioned through A; B removes it, and Mosquitto drops its connection.
    const r0 = devices[0]!;
    const closed = new Promise<void>((resolve) => r0.client.once('close', () => resolve()));
    await viaB.removeDevice('r-0');
    await closed;
    const again = await new TestDevice(r0.config).connect().then(
      () => 'connected',
      (err: { code?: number }) => err.code,
    );
    expect(again).not.toBe('connected');
    expect(devices[1]!.client.connected).toBe(true);
  }, 60_000);
});
