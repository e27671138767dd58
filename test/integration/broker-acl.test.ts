import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../protocol/log.js';
import { topics } from '../../protocol/topics.js';
import { startBroker, type Identity, type RunningBroker } from '../../cloud-broker/broker/index.js';
import { missingCommand, skipForPackage } from '../helpers/requires.js';

// Credentials as the fleet keeps them; revocation removes the entry.
const creds = new Map<string, string>([
  ['dev-a', 'token-a'],
  ['dev-b', 'token-b'],
]);
const SERVICE = { user: 'outpost-cloud', pass: 'service-secret' };
async function authenticate(username: string, password: Buffer): Promise<Identity | null> {
  if (username === SERVICE.user)
    return password.toString() === SERVICE.pass ? { kind: 'service', name: username } : null;
  return creds.get(username) === password.toString() ? { kind: 'device', deviceId: username } : null;
}

let broker: RunningBroker;
const clients: MqttClient[] = [];

beforeAll(async () => {
  broker = await startBroker({ host: '127.0.0.1', port: 0, wsPort: 0, authenticate, log: silentLogger });
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
  await broker.close();
});

async function connect(
  user: string,
  pass: string,
  extra: mqtt.IClientOptions = {},
  url = broker.url,
): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, {
    username: user,
    password: pass,
    clientId: user,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    ...extra,
  });
  clients.push(c);
  return c;
}

function connectError(user: string, pass: string, clientId = user): Promise<number | string> {
  return new Promise((resolve) => {
    const c = mqtt.connect(broker.url, {
      username: user,
      password: pass,
      clientId,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    });
    clients.push(c);
    c.once('connect', () => resolve('connected'));
    c.once('error', (err) => resolve((err as { code?: number }).code ?? err.message));
  });
}

function closed(c: MqttClient, ms = 5000): Promise<boolean> {
  return new Promise((resolve) => {
    if (!c.connected) return resolve(true);
    const t = setTimeout(() => resolve(false), ms);
    c.once('close', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

async function granted(c: MqttClient, filter: string): Promise<number> {
  // mqtt.js 5 rejects when every filter of a SUBSCRIBE was refused (SUBACK 0x80).
  try {
    const g = await c.subscribeAsync(filter, { qos: 1 });
    return g[0].qos;
  } catch (err) {
    const granted = (err as { packet?: { granted?: number[] } }).packet?.granted;
    if (granted) return granted[0];
    throw err;
  }
}

describe('broker ACL (real aedes, real mqtt.js clients)', () => {
  it('a device may subscribe to its own desired state and commands only', async () => {
    const a = await connect('dev-a', 'token-a');
    expect(await granted(a, topics.desired('dev-a'))).toBe(1);
    expect(await granted(a, topics.commands('dev-a'))).toBe(1);
    expect(await granted(a, topics.command('dev-a', 'sync'))).toBe(1);
    for (const f of [
      topics.desired('dev-b'),
      topics.commands('dev-b'),
      'outpost/v1/devices/+/desired',
      'outpost/#',
      '#',
      '$SYS/#',
      topics.reported('dev-b'),
      topics.reported('dev-a'),
    ]) {
      expect(await granted(a, f), f).toBe(128);
    }
    expect(a.connected).toBe(true);
  });

  it('a device cannot publish desired state, even its own: the connection is closed', async () => {
    const a = await connect('dev-a', 'token-a');
    a.publish(topics.desired('dev-a'), '{"signed":{}}', { qos: 1, retain: true });
    expect(await closed(a)).toBe(true);
    const svc = await connect(SERVICE.user, SERVICE.pass, { clientId: 'svc-check-desired' });
    const got: string[] = [];
    svc.on('message', (t) => got.push(t));
    await svc.subscribeAsync(topics.desired('dev-a'));
    await new Promise((r) => setTimeout(r, 200));
    expect(got).toEqual([]);
  });

  it('a device cannot publish as another device', async () => {
    const a = await connect('dev-a', 'token-a', { clientId: 'dev-a:pub-as-b' });
    a.publish(topics.reported('dev-b'), '{}', { qos: 1 });
    expect(await closed(a)).toBe(true);
  });

  it('own reports reach the cloud service identity', async () => {
    const svc = await connect(SERVICE.user, SERVICE.pass, { clientId: 'svc-reports' });
    const got = new Promise<[string, string]>((resolve) => svc.on('message', (t, p) => resolve([t, p.toString()])));
    await svc.subscribeAsync(topics.allReported, { qos: 1 });
    const a = await connect('dev-a', 'token-a', { clientId: 'dev-a:reporter' });
    await a.publishAsync(topics.reported('dev-a'), '{"hello":1}', { qos: 1, retain: true });
    expect(await got).toEqual([topics.reported('dev-a'), '{"hello":1}']);
  });

  it('a service publishes desired state that only its device receives', async () => {
    const a = await connect('dev-a', 'token-a', { clientId: 'dev-a:sub' });
    const b = await connect('dev-b', 'token-b', { clientId: 'dev-b:sub' });
    const gotA: string[] = [];
    const gotB: string[] = [];
    a.on('message', (t) => gotA.push(t));
    b.on('message', (t) => gotB.push(t));
    await a.subscribeAsync(topics.desired('dev-a'), { qos: 1 });
    await b.subscribeAsync(topics.desired('dev-b'), { qos: 1 });
    const svc = await connect(SERVICE.user, SERVICE.pass, { clientId: 'svc-pub' });
    await svc.publishAsync(topics.desired('dev-a'), 'doc-a', { qos: 1 });
    await new Promise((r) => setTimeout(r, 200));
    expect(gotA).toEqual([topics.desired('dev-a')]);
    expect(gotB).toEqual([]);
  });

  it('wrong password, unknown user and a stolen client id are refused at CONNECT', async () => {
    expect(await connectError('dev-a', 'wrong')).toBe(4);
    expect(await connectError('nobody', 'token-a')).toBe(4);
    expect(await connectError(SERVICE.user, 'guess')).toBe(4);
    // dev-a's credentials with dev-b's client id would take over dev-b's session [MQTT-3.1.4-2].
    expect(await connectError('dev-a', 'token-a', 'dev-b')).toBe(2);
  });

  it('a revoked device is disconnected and cannot connect again', async () => {
    creds.set('dev-r', 'token-r');
    const r = await connect('dev-r', 'token-r');
    creds.delete('dev-r');
    expect(broker.disconnectDevice('dev-r')).toBe(1);
    expect(await closed(r)).toBe(true);
    expect(await connectError('dev-r', 'token-r')).toBe(4);
  });

  it('retained desired state is delivered to a device that connects later, also over WebSocket', async () => {
    const svc = await connect(SERVICE.user, SERVICE.pass, { clientId: 'svc-retain' });
    await svc.publishAsync(topics.desired('dev-b'), 'retained-doc', { qos: 1, retain: true });
    const b = await connect('dev-b', 'token-b', { clientId: 'dev-b:ws' }, broker.wsUrl!);
    const got = new Promise<string>((resolve) => b.on('message', (_t, p) => resolve(p.toString())));
    await b.subscribeAsync(topics.desired('dev-b'), { qos: 1 });
    expect(await got).toBe('retained-doc');
  });
});

describe('broker over TLS', () => {
  const why = missingCommand('openssl', ['version']);
  it.skipIf(skipForPackage(why))('accepts an authenticated device over mqtts', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'outpost-tls-'));
    try {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:P-256',
          '-nodes',
          '-days',
          '1',
          '-subj',
          '/CN=localhost',
          '-addext',
          'subjectAltName=IP:127.0.0.1',
          '-keyout',
          path.join(dir, 'key.pem'),
          '-out',
          path.join(dir, 'cert.pem'),
        ],
        { stdio: 'ignore' },
      );
      const cert = await readFile(path.join(dir, 'cert.pem'));
      const key = await readFile(path.join(dir, 'key.pem'));
      const tlsBroker = await startBroker({
        host: '127.0.0.1',
        port: 0,
        tls: { port: 0, cert, key },
        authenticate,
        log: silentLogger,
      });
      try {
        const a = await connect(
          'dev-a',
          'token-a',
          { clientId: 'dev-a:tls', ca: cert, rejectUnauthorized: true },
          tlsBroker.tlsUrl!,
        );
        expect(await granted(a, topics.desired('dev-a'))).toBe(1);
        expect(await granted(a, topics.desired('dev-b'))).toBe(128);
        await a.endAsync();
      } finally {
        await tlsBroker.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
