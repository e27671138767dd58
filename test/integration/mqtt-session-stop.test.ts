import { createServer, type AddressInfo, type Server } from 'node:net';
import { Aedes } from 'aedes';
import { afterEach, describe, expect, it } from 'vitest';
import { sessionTopics } from '../../agent/daemon/session-topics.js';
import { MqttSession } from '../../agent/sync/mqtt-session.js';
import { silentLogger } from '../../protocol/log.js';

/**
 * MqttSession.stop() must return even when a QoS 1 publish will never be acknowledged. Before the
 * fix, mqtt.js's end() waited for those acknowledgements forever: a broker that was slow or gone
 * at shutdown hung the agent's stop (and bench/broker-restart.ts with 500 sessions).
 *
 * The broker is a real aedes on port 0; "never acknowledged" is made real by an authorizePublish
 * hook that never answers for the reported-state topic (aedes sends the PUBACK only after it).
 */
const ID = 'dev-stop';
const topics = sessionTopics(ID);

interface TestBroker {
  url: string;
  aedes: Aedes;
  server: Server;
  /** Settles once a reported-state publish reached the broker and is being held. */
  held: Promise<void>;
  close(): Promise<void>;
}

async function startHoldingBroker(): Promise<TestBroker> {
  let onHeld = (): void => undefined;
  const held = new Promise<void>((resolve) => (onHeld = resolve));
  const aedes = await Aedes.createBroker({
    authorizePublish(_client, packet, done) {
      if (packet.topic === topics.reported) {
        onHeld(); // and never call done: no PUBACK
        return;
      }
      done(null);
    },
  });
  const server = createServer((socket) => aedes.handle(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `mqtt://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    aedes,
    server,
    held,
    close: async () => {
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Rejects when `p` has not settled in `ms`: a hang detector, not a timing assertion. */
function settlesWithin<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
    }),
  ]);
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function connectedSession(url: string): Promise<MqttSession> {
  const session = new MqttSession({
    url,
    deviceId: ID,
    username: ID,
    password: 'x',
    topics,
    reconnectMinMs: 200,
    reconnectMaxMs: 400,
    log: silentLogger,
  });
  await new Promise<void>((resolve) => {
    session.once('connected', resolve);
    session.start();
  });
  return session;
}

describe('MqttSession.stop with unacknowledged QoS 1 publishes', () => {
  it('returns while the broker holds a reported state unacknowledged', async () => {
    const broker = await startHoldingBroker();
    cleanups.push(broker.close);
    const session = await connectedSession(broker.url);
    session.publishReported({ models: {} });
    await broker.held;
    expect(session.connected).toBe(true);
    await expect(settlesWithin(session.stop(), 10_000, 'stop()')).resolves.toBeUndefined();
  });

  it('returns when the connection dropped with a report in flight and the broker is still down', async () => {
    const broker = await startHoldingBroker();
    const session = await connectedSession(broker.url);
    let disconnected = false;
    session.on('disconnected', () => (disconnected = true));
    session.publishReported({ models: {} });
    await broker.held;
    await broker.close();
    while (!disconnected) await new Promise((r) => setTimeout(r, 10));
    expect(session.connected).toBe(false);
    await expect(settlesWithin(session.stop(), 10_000, 'stop()')).resolves.toBeUndefined();
  });
});
