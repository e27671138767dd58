import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../protocol/log.js';
import { topics } from '../../protocol/topics.js';
import { openDb, type Db } from '../../cloud-broker/db/index.js';
import { startFleetServices, type FleetServices } from '../../cloud-broker/fleet/index.js';
import { missingMosquitto, startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { skipForPackage } from '../helpers/requires.js';
import { publishVersion, TestDevice, waitFor } from './fleet-helpers.js';

const missing = missingMosquitto();

describe.skipIf(skipForPackage(missing))('the fleet through Debian mosquitto 2 (no aedes)', () => {
  let dir: string;
  let db: Db;
  let mosq: Mosquitto | undefined;
  let svc: FleetServices;
  const devices: TestDevice[] = [];

  async function provision(id: string, tags: string[] = []): Promise<TestDevice> {
    const { agentConfig } = await svc.fleet.provision(id, tags);
    // Mosquitto learns the new device's credentials from its password file on SIGHUP.
    await mosq!.addUser(id, agentConfig.credentials.token);
    const d = new TestDevice(agentConfig);
    // The reload is asynchronous: retry until the new password is accepted.
    await waitFor(`${id} accepted by mosquitto`, () =>
      d.connect().then(
        () => true,
        () => false,
      ),
    );
    devices.push(d);
    return d;
  }

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'outpost-mosq-'));
    mosq = await startMosquitto(dir);
    db = openDb(path.join(dir, 'cloud.db'));
    publishVersion(db, 'alice/det', 'v1');
    svc = await startFleetServices({
      db,
      dataDir: dir,
      log: silentLogger,
      httpUrl: 'http://127.0.0.1:9',
      host: '127.0.0.1',
      mqttPort: 0,
      externalBroker: mosq.externalBroker,
    });
  });

  afterAll(async () => {
    await Promise.all(devices.map((d) => d.close().catch(() => undefined)));
    await svc?.close();
    db?.close();
    await mosq?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('a device verifies the signed desired state published through mosquitto, and reports back', async () => {
    expect(svc.broker).toBeNull();
    const d = await provision('m-1');
    await svc.fleet.deploy({ model: 'alice/det@1' }, { kind: 'device', value: 'm-1' });
    await waitFor('m-1 gets det@1 via mosquitto', () => d.versionOf('alice/det') === 1);
    expect(d.rejected).toEqual([]);
    await d.report([{ id: 'alice/det', version: 1, activeVersion: 1, state: 'active' }]);
    await waitFor(
      'report ingested through mosquitto',
      () => svc.fleet.rolloutStatus().find((r) => r.device === 'm-1')?.converged,
    );
  });

  it("mosquitto's ACL keeps a device out of another device's desired state", async () => {
    const spy = await provision('m-2');
    const got: string[] = [];
    spy.client.on('message', (t) => got.push(t));
    await spy.client.subscribeAsync(topics.desired('m-1')).catch(() => undefined);
    await spy.client.subscribeAsync('outpost/v1/devices/+/desired').catch(() => undefined);
    await svc.fleet.deploy({ model: 'alice/det@1' }, { kind: 'all', value: '*' });
    await waitFor('m-2 own document', () => spy.versionOf('alice/det') === 1);
    expect(got.filter((t) => t !== topics.desired('m-2'))).toEqual([]);
    // A device's publish of desired state is dropped by mosquitto (it never reaches m-1).
    const before = devices[0].docs.length;
    await spy.client.publishAsync(topics.desired('m-1'), 'forged', { qos: 1, retain: true }).catch(() => undefined);
    const bad = await mqtt
      .connectAsync(mosq!.externalBroker.url, { username: 'm-2', password: 'wrong', reconnectPeriod: 0 })
      .then(
        () => 'connected',
        (e: { code?: number }) => e.code,
      );
    expect(bad).toBe(5);
    expect(devices[0].docs.length).toBe(before);
    expect(devices[0].rejected).toEqual([]);
  });

  it('after a mosquitto restart the cloud republishes and a device that connects later gets its state', async () => {
    const rev = devices[0].last!.revision;
    await Promise.all(devices.map((d) => d.close()));
    await mosq!.stop();
    await mosq!.start();
    // The publisher reconnects on its own (1 s period) and republishes from the database.
    const late = new TestDevice(devices[0].config);
    devices.push(late);
    await waitFor(
      'retained state after restart',
      async () => {
        if (!late.client?.connected) await late.connect().catch(() => undefined);
        return late.last?.revision === rev;
      },
      15000,
    );
  });
});
