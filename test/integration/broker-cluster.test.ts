import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../protocol/log.js';
import { startBroker, type RunningBroker } from '../../cloud-broker/broker/broker.js';
import type { Identity } from '../../cloud-broker/broker/acl.js';
import { redisOptions } from '../../cloud-broker/broker/cluster.js';
import { missingRedis, startRedis, type Redis } from '../helpers/engines/redis.js';
import { skipForPackage } from '../helpers/requires.js';
import { useTempDir } from '../helpers/temp-dir.js';
import { codeOf } from '../helpers/error-code.js';

// Two embedded brokers joined through a real Redis, with Outpost's own authentication and ACL:
// what one replica publishes reaches devices on the other, live and retained.
const tmp = useTempDir('outpost-cluster-', 'all');
const log = createLogger({ level: 'silent' });

async function users(username: string, password: Buffer): Promise<Identity | null> {
  if (username === 'svc' && password.toString() === 'svc-pass') return { kind: 'service', name: 'svc' };
  if (username.startsWith('dev-') && password.toString() === `${username}-token`)
    return { kind: 'device', deviceId: username };
  return null;
}

function connect(url: string, id: string, password: string, clean = true): Promise<mqtt.MqttClient> {
  const c = mqtt.connect(url, {
    clientId: id,
    username: id,
    password,
    reconnectPeriod: 0,
    connectTimeout: 5000,
    clean,
  });
  return new Promise((resolve, reject) => {
    c.once('connect', () => resolve(c));
    c.once('error', reject);
  });
}

function nextMessage(c: mqtt.MqttClient, topic: string): Promise<{ payload: string; retain: boolean }> {
  return new Promise((resolve) => {
    const on = (t: string, p: Buffer, packet: { retain: boolean }) => {
      if (t !== topic) return;
      c.off('message', on);
      resolve({ payload: p.toString(), retain: packet.retain });
    };
    c.on('message', on);
  });
}

describe.skipIf(skipForPackage(missingRedis()))('aedes replicas over Redis', () => {
  let redis: Redis;
  let a: RunningBroker;
  let b: RunningBroker;
  const clients: mqtt.MqttClient[] = [];
  beforeAll(async () => {
    redis = await startRedis(tmp.dir);
    [a, b] = await Promise.all(
      [0, 1].map(() => startBroker({ host: '127.0.0.1', port: 0, authenticate: users, log, redisUrl: redis.url })),
    );
  });
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await a?.close();
    await b?.close();
    await redis?.stop();
  });

  it('delivers a publish of replica A to a device on replica B, and keeps it retained for one that connects later', async () => {
    const topic = 'outpost/v1/devices/dev-1/desired';
    const dev1 = await connect(b.url, 'dev-1', 'dev-1-token');
    clients.push(dev1);
    await dev1.subscribeAsync(topic, { qos: 1 });
    const svc = await connect(a.url, 'svc', 'svc-pass');
    clients.push(svc);
    const live = nextMessage(dev1, topic);
    await svc.publishAsync(topic, '{"revision":1}', { qos: 1, retain: true });
    expect(await live).toEqual({ payload: '{"revision":1}', retain: false });

    // A device that connects afterwards, to either replica, finds the retained message in Redis.
    await dev1.endAsync(true);
    for (const url of [a.url, b.url]) {
      const late = await connect(url, 'dev-1', 'dev-1-token');
      clients.push(late);
      const got = nextMessage(late, topic);
      await late.subscribeAsync(topic, { qos: 1 });
      expect(await got).toEqual({ payload: '{"revision":1}', retain: true });
      await late.endAsync(true);
    }
  });

  it('answers a persistent session subscribing to desired and commands in one SUBSCRIBE, as the agent does', async () => {
    // Without the broker's fix (cluster.ts, storeSubscriptionsOnce) this SUBACK never came.
    const svc = await connect(a.url, 'svc', 'svc-pass');
    clients.push(svc);
    await svc.publishAsync('outpost/v1/devices/dev-3/desired', '{"revision":7}', { qos: 1, retain: true });
    const dev3 = await connect(b.url, 'dev-3', 'dev-3-token', false);
    clients.push(dev3);
    const retained = nextMessage(dev3, 'outpost/v1/devices/dev-3/desired');
    const granted = await Promise.race([
      dev3.subscribeAsync(['outpost/v1/devices/dev-3/desired', 'outpost/v1/devices/dev-3/commands/#'], { qos: 1 }),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no SUBACK within 10 s')), 10_000)),
    ]);
    expect(granted.map((g) => g.qos)).toEqual([1, 1]);
    expect(await retained).toEqual({ payload: '{"revision":7}', retain: true });
    const command = nextMessage(dev3, 'outpost/v1/devices/dev-3/commands/sync');
    await svc.publishAsync('outpost/v1/devices/dev-3/commands/sync', '{}', { qos: 1 });
    expect((await command).payload).toBe('{}');
  });

  it('keeps the ACL on every replica: a device cannot read another device’s topic through the other one', async () => {
    const dev2 = await connect(a.url, 'dev-2', 'dev-2-token');
    clients.push(dev2);
    // SUBACK 0x80 for the filter; mqtt.js reports it as a rejected subscribe.
    await expect(dev2.subscribeAsync('outpost/v1/devices/dev-1/desired', { qos: 1 })).rejects.toThrow(
      /Subscribe error/,
    );
    expect(dev2.connected).toBe(true);
  });

  it('reads a redis:// URL into connection options and refuses other schemes with USAGE', () => {
    expect(redisOptions('redis://u:p%40ss@10.0.0.5:6380/2')).toEqual({
      host: '10.0.0.5',
      port: 6380,
      db: 2,
      username: 'u',
      password: 'p@ss',
    });
    expect(redisOptions('rediss://cache')).toMatchObject({ port: 6379, db: 0, tls: {} });
    expect(codeOf(() => redisOptions('http://x'))).toBe('USAGE');
    expect(codeOf(() => redisOptions('redis://x/notanumber'))).toBe('USAGE');
  });
});
