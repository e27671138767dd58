import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../protocol/log.js';
import { topics } from '../../protocol/topics.js';
import { addMosquittoUser, writeMosquittoFiles, type MosquittoFiles } from '../../cloud-broker/broker/mosquitto.js';
import { openDb, type Db } from '../../cloud-broker/db/index.js';
import { startFleetServices, type FleetServices } from '../../cloud-broker/fleet/index.js';
import { missingCommand, skipForPackage } from '../helpers/requires.js';
import { publishVersion, TestDevice, waitFor } from './fleet-helpers.js';

// `mosquitto -h` exits non-zero, so look the binaries up instead of running them.
const missing = missingCommand('sh', ['-c', 'command -v mosquitto && command -v mosquitto_passwd']);

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function waitListening(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`mosquitto did not listen on ${port}`);
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await done;
}

describe.skipIf(skipForPackage(missing))('the fleet through Debian mosquitto 2 (no aedes)', () => {
  let dir: string;
  let db: Db;
  let files: MosquittoFiles;
  let port: number;
  let mosq: ChildProcess | undefined;
  let svc: FleetServices;
  const service = { username: 'outpost-cloud', password: 'svc-' + Math.random().toString(36).slice(2) };
  const devices: TestDevice[] = [];

  async function launch(): Promise<void> {
    mosq = spawn('mosquitto', ['-c', files.conf], { stdio: ['ignore', 'ignore', 'inherit'] });
    await waitListening(port);
  }

  async function provision(id: string, tags: string[] = []): Promise<TestDevice> {
    const { agentConfig } = await svc.fleet.provision(id, tags);
    // Mosquitto learns the new device's credentials from its password file on SIGHUP.
    await addMosquittoUser(files.passwordFile, id, agentConfig.credentials.token);
    mosq!.kill('SIGHUP');
    const d = new TestDevice(agentConfig);
    // The reload is asynchronous: retry until the new password is accepted.
    await waitFor(`${id} accepted by mosquitto`, () => d.connect().then(() => true, () => false));
    devices.push(d);
    return d;
  }

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'outpost-mosq-'));
    port = await freePort();
    files = await writeMosquittoFiles(path.join(dir, 'mosquitto'), { host: '127.0.0.1', port, service, user: os.userInfo().username });
    await launch();
    db = openDb(path.join(dir, 'cloud.db'));
    publishVersion(db, 'alice/det', 'v1');
    svc = await startFleetServices({
      db, dataDir: dir, log: silentLogger, httpUrl: 'http://127.0.0.1:9', host: '127.0.0.1', mqttPort: 0,
      externalBroker: { url: `mqtt://127.0.0.1:${port}`, username: service.username, password: service.password },
    });
  });

  afterAll(async () => {
    await Promise.all(devices.map((d) => d.close().catch(() => undefined)));
    await svc?.close();
    db?.close();
    await stop(mosq);
    await rm(dir, { recursive: true, force: true });
  });

  it('a device verifies the signed desired state published through mosquitto, and reports back', async () => {
    expect(svc.broker).toBeNull();
    const d = await provision('m-1');
    await svc.fleet.deploy({ model: 'alice/det@1' }, { kind: 'device', value: 'm-1' });
    await waitFor('m-1 gets det@1 via mosquitto', () => d.versionOf('alice/det') === 1);
    expect(d.rejected).toEqual([]);
    await d.report([{ id: 'alice/det', version: 1, activeVersion: 1, state: 'active' }]);
    await waitFor('report ingested through mosquitto', () => svc.fleet.rolloutStatus().find((r) => r.device === 'm-1')?.converged);
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
    const bad = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { username: 'm-2', password: 'wrong', reconnectPeriod: 0 }).then(() => 'connected', (e: { code?: number }) => e.code);
    expect(bad).toBe(5);
    expect(devices[0].docs.length).toBe(before);
    expect(devices[0].rejected).toEqual([]);
  });

  it('after a mosquitto restart the cloud republishes and a device that connects later gets its state', async () => {
    const rev = devices[0].last!.revision;
    await Promise.all(devices.map((d) => d.close()));
    await stop(mosq);
    await launch();
    // The publisher reconnects on its own (1 s period) and republishes from the database.
    const late = new TestDevice(devices[0].config);
    devices.push(late);
    await waitFor('retained state after restart', async () => {
      if (!late.client?.connected) await late.connect().catch(() => undefined);
      return late.last?.revision === rev;
    }, 15000);
  });
});
