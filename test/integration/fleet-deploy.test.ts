import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../protocol/log.js';
import { openDb, type Db } from '../../cloud-broker/db/index.js';
import { startFleetServices, type FleetServices } from '../../cloud-broker/fleet/index.js';
import { publishVersion, putAppModels, TestDevice, waitFor } from './fleet-helpers.js';
import { testDatabase } from '../helpers/test-db.js';

let dir: string;
let db: Db;
let svc: FleetServices;
const devices: TestDevice[] = [];

async function start(): Promise<FleetServices> {
  return startFleetServices({
    db,
    dataDir: dir,
    log: silentLogger,
    httpUrl: 'http://127.0.0.1:9/',
    host: '127.0.0.1',
    mqttPort: 0,
  });
}

async function device(id: string, tags: string[] = []): Promise<TestDevice> {
  const { agentConfig } = await svc.fleet.provision(id, tags);
  const d = await new TestDevice(agentConfig).connect();
  devices.push(d);
  return d;
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'outpost-fleet-'));
  db = openDb((await testDatabase()) ?? path.join(dir, 'cloud.db'));
  publishVersion(db, 'alice/det', 'v1 bytes');
  publishVersion(db, 'alice/det', 'v2 bytes');
  publishVersion(db, 'alice/cls', 'cls v1');
  svc = await start();
});

afterAll(async () => {
  await Promise.all(devices.map((d) => d.close().catch(() => undefined)));
  await svc?.close();
  db?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('fleet: deploy, tags, rollback, reports (real aedes, real clients, real SQLite)', () => {
  it('provision writes what the agent needs and the device gets an empty signed state', async () => {
    const d = await device('cam-1', ['site-a']);
    expect(d.config.cloud.mqtt).toBe(svc.mqttUrl);
    expect(d.config.trustedKeys[0].keyid).toBe(svc.signer.keyid);
    await waitFor('first document', () => d.last);
    expect(d.last!.revision).toBe(1);
    expect(d.last!.models).toEqual([]);
    await expect(svc.fleet.provision('cam-1')).rejects.toMatchObject({ code: 'DEVICE_EXISTS' });
  });

  it('deploy to one device: latest version, signed, revision grows; others untouched', async () => {
    const one = devices[0];
    const other = await device('cam-2');
    await waitFor('cam-2 first document', () => other.last);
    const res = await svc.fleet.deploy({ model: 'alice/det' }, { kind: 'device', value: 'cam-1' });
    expect(res.devices).toEqual(['cam-1']);
    await waitFor('cam-1 gets alice/det@2', () => one.versionOf('alice/det') === 2);
    expect(one.last!.revision).toBe(2);
    const m = one.last!.models[0];
    expect(m.files[0]).toMatchObject({ path: 'model.onnx', size: 8 });
    expect(m.blobBase).toBe('http://127.0.0.1:9/v1/blobs/');
    expect(other.last!.revision).toBe(1);
    expect(one.rejected).toEqual([]);
  });

  it('deploy to a tag reaches tagged devices, and a device that joins the tag later', async () => {
    const tagged = await device('cam-3', ['site-b']);
    const late = await device('cam-4');
    await svc.fleet.deploy({ model: 'alice/cls@1' }, { kind: 'tag', value: 'site-b' });
    await waitFor('cam-3 gets alice/cls', () => tagged.versionOf('alice/cls') === 1);
    expect(late.versionOf('alice/cls')).toBeUndefined();
    await svc.fleet.tag('cam-4', ['site-b'], []);
    await waitFor('cam-4 gets the tag deployment after joining', () => late.versionOf('alice/cls') === 1);
    // Leaving the tag removes the model from its desired state.
    await svc.fleet.tag('cam-4', [], ['site-b']);
    await waitFor('cam-4 loses alice/cls', () => late.last!.models.length === 0);
  });

  it('deploy --all reaches every device; rollback goes back to the previous version', async () => {
    const first = await svc.fleet.deploy({ model: 'alice/det@1' }, { kind: 'all', value: '*' });
    expect(first.devices.sort()).toEqual(['cam-1', 'cam-2', 'cam-3', 'cam-4']);
    await waitFor('all on det@1', () => devices.every((d) => d.versionOf('alice/det') === 1));
    await svc.fleet.deploy({ model: 'alice/det@2' }, { kind: 'all', value: '*' });
    await waitFor('all on det@2', () => devices.every((d) => d.versionOf('alice/det') === 2));
    const revs = devices.map((d) => d.last!.revision);
    const rb = await svc.fleet.rollback('alice/det', { kind: 'all', value: '*' });
    expect([rb.from, rb.to]).toEqual([2, 1]);
    await waitFor('all back on det@1', () => devices.every((d) => d.versionOf('alice/det') === 1));
    devices.forEach((d, i) => expect(d.last!.revision).toBeGreaterThan(revs[i]));
    await expect(svc.fleet.rollback('alice/det', { kind: 'all', value: '*' })).rejects.toMatchObject({
      code: 'ROLLBACK_NO_PREVIOUS',
    });
    await expect(svc.fleet.rollback('alice/det', { kind: 'tag', value: 'nobody' })).rejects.toMatchObject({
      code: 'ROLLBACK_NO_PREVIOUS',
    });
    expect(devices.flatMap((d) => d.rejected)).toEqual([]);
  });

  it('deploy --app sets every model of the app', async () => {
    putAppModels(db, 'alice/app1', { 'alice/cls': 1, 'alice/det': 2 });
    const d = devices.find((x) => x.config.deviceId === 'cam-2')!;
    await svc.fleet.deploy({ app: 'alice/app1' }, { kind: 'device', value: 'cam-2' });
    await waitFor('cam-2 has both app models', () => d.versionOf('alice/cls') === 1 && d.versionOf('alice/det') === 2);
  });

  it('bad targets and unknown versions are refused with their codes', async () => {
    await expect(svc.fleet.deploy({ model: 'alice/det@9' }, { kind: 'all', value: '*' })).rejects.toMatchObject({
      code: 'DEPLOY_VERSION_NOT_FOUND',
    });
    await expect(svc.fleet.deploy({ model: 'bob/none' }, { kind: 'all', value: '*' })).rejects.toMatchObject({
      code: 'DEPLOY_VERSION_NOT_FOUND',
    });
    await expect(svc.fleet.deploy({ app: 'alice/noapp' }, { kind: 'all', value: '*' })).rejects.toMatchObject({
      code: 'DEPLOY_VERSION_NOT_FOUND',
    });
    await expect(svc.fleet.deploy({ model: 'alice/det' }, { kind: 'device', value: 'ghost' })).rejects.toMatchObject({
      code: 'DEVICE_NOT_FOUND',
    });
    await expect(svc.fleet.deploy({ model: 'alice/det' }, { kind: 'tag', value: 'bad tag' })).rejects.toMatchObject({
      code: 'TAG_INVALID',
    });
    await expect(svc.fleet.provision('bad/id')).rejects.toMatchObject({ code: 'DEVICE_ID_INVALID' });
  });

  it('reports are ingested and rollout status joins desired and reported', async () => {
    const d = devices[0];
    await d.report([{ id: 'alice/det', version: 1, activeVersion: 1, state: 'active' }]);
    await waitFor('report stored', () => svc.fleet.reportedOf('cam-1'));
    const row = svc.fleet.rolloutStatus().find((r) => r.device === 'cam-1')!;
    expect(row.converged).toBe(true);
    expect(row.models).toEqual([{ id: 'alice/det', desired: 1, active: 1, state: 'active' }]);
    const d3 = devices.find((x) => x.config.deviceId === 'cam-3')!;
    await d3.report([
      { id: 'alice/det', version: 1, activeVersion: 2, state: 'downloading', progress: { bytes: 3, total: 8 } },
    ]);
    await waitFor('cam-3 report', () => svc.fleet.reportedOf('cam-3'));
    const r3 = svc.fleet.rolloutStatus().find((r) => r.device === 'cam-3')!;
    expect(r3.converged).toBe(false);
    expect(r3.models.find((m) => m.id === 'alice/det')).toMatchObject({
      desired: 1,
      active: 2,
      state: 'downloading',
      progress: { bytes: 3, total: 8 },
    });
    expect(r3.models.find((m) => m.id === 'alice/cls')).toMatchObject({ desired: 1, state: 'unreported' });
  });

  it('birth and Last Will on status/ are ingested as online/offline', async () => {
    const { agentConfig } = await svc.fleet.provision('cam-lwt');
    const c = await mqtt.connectAsync(svc.mqttUrl, {
      username: 'cam-lwt',
      password: agentConfig.credentials.token,
      clientId: 'cam-lwt',
      reconnectPeriod: 0,
      will: { topic: 'outpost/v1/devices/cam-lwt/status', payload: Buffer.from('offline'), qos: 1, retain: true },
    });
    await c.publishAsync('outpost/v1/devices/cam-lwt/status', 'online', { qos: 1, retain: true });
    await waitFor('online', () => svc.fleet.getDevice('cam-lwt').status === 'online');
    c.stream.destroy(); // an unclean drop fires the Last Will
    await waitFor('offline via Last Will', () => svc.fleet.getDevice('cam-lwt').status === 'offline');
    await c.endAsync(true).catch(() => undefined);
    await svc.fleet.remove('cam-lwt');
  });

  it('retained desired states survive a broker restart and reach a device that connects later', async () => {
    const before = new Map(devices.map((d) => [d.config.deviceId, d.last!.revision]));
    await Promise.all(devices.map((d) => d.close()));
    await svc.close();
    svc = await start();
    for (const d of devices) d.config.cloud.mqtt = svc.mqttUrl;
    const fresh = devices.map((d) => new TestDevice(d.config));
    await Promise.all(fresh.map((d) => d.connect()));
    devices.splice(0, devices.length, ...fresh);
    for (const d of fresh) {
      await waitFor(`${d.config.deviceId} retained after restart`, () => d.last);
      expect(d.last!.revision).toBe(before.get(d.config.deviceId));
    }
  });

  it('remove revokes the device: disconnected, refused, retained state cleared', async () => {
    const d = devices.find((x) => x.config.deviceId === 'cam-2')!;
    const closed = new Promise<void>((resolve) => d.client.once('close', () => resolve()));
    await svc.fleet.remove('cam-2');
    await closed;
    const err = await new Promise<number | string>((resolve) => {
      const c = mqtt.connect(svc.mqttUrl, {
        username: 'cam-2',
        password: d.config.credentials.token,
        clientId: 'cam-2',
        reconnectPeriod: 0,
      });
      c.once('connect', () => resolve('connected'));
      c.once('error', (e) => {
        c.end(true);
        resolve((e as { code?: number }).code ?? e.message);
      });
    });
    expect(err).toBe(4);
    expect(svc.fleet.listDevices().map((x) => x.id)).not.toContain('cam-2');
    // Re-provisioning continues the revision counter, so a device that kept state accepts it.
    const again = await svc.fleet.provision('cam-2');
    const revived = await new TestDevice(again.agentConfig).connect();
    devices.push(revived);
    await waitFor('revived device document', () => revived.last);
    expect(revived.last!.revision).toBeGreaterThan(d.last!.revision);
  });
});
