/**
 * Broker restart with N connected agents (default 500, OUTPOST_BENCH_SESSIONS): the embedded aedes
 * broker (real auth and ACL hooks, any device accepted) is closed for OUTPOST_BENCH_DOWN_MS
 * (default 2000) and started again on the same port. Measured: time from the new broker listening
 * until every session is back (subscribed and birth published), and the peak reconnects per
 * second. Ours: real `MqttSession` objects (exponential back-off with full jitter, agent defaults
 * 1 s .. 60 s). Baseline in the same run: plain mqtt.js clients with its built-in fixed 1 s
 * reconnect, which is what the jitter is there to avoid (they all come back in the same second).
 *
 * A session counts as back once per restart (subscribed and birth acknowledged), however often it
 * reconnected. 500 sessions used to hang here: a broker closed while some births were still in
 * flight left MqttSession.stop() waiting forever for their PUBACKs (fixed in mqtt-session.ts), so
 * the broker is now closed only after every session has announced itself.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { startBroker, type RunningBroker } from '../cloud-broker/broker/broker.js';
import { sessionTopics } from '../agent/daemon/session-topics.js';
import { MqttSession } from '../agent/sync/mqtt-session.js';
import { silentLogger } from '../protocol/log.js';
import type { BenchRow } from './run.js';

const N = Number(process.env.OUTPOST_BENCH_SESSIONS ?? 500);
const DOWN_MS = Number(process.env.OUTPOST_BENCH_DOWN_MS ?? 2000);
const DEADLINE_MS = 90_000;

const start = (port: number): Promise<RunningBroker> =>
  startBroker({
    host: '127.0.0.1',
    port,
    log: silentLogger,
    authenticate: async (username) => ({ kind: 'device', deviceId: username }),
  });

interface Outcome {
  allBackMs: number;
  peakPerSecond: number;
}

/**
 * Restarts the broker once everyone is connected. `connectAll` wires `onUp(i)` to client i's
 * "connected and ready" event and resolves once every client has reported it.
 */
async function restartAndMeasure(
  n: number,
  connectAll: (url: string, onUp: (i: number) => void) => Promise<() => Promise<void>>,
): Promise<Outcome> {
  let broker = await start(0);
  const port = Number(new URL(broker.url).port);
  const up = new Set<number>();
  let t0 = 0;
  const stamps: number[] = [];
  let measuring = false;
  const onUp = (i: number): void => {
    if (!measuring) {
      up.add(i);
      return;
    }
    if (up.has(i)) return;
    up.add(i);
    stamps.push(performance.now() - t0);
  };
  const closeAll = await connectAll(broker.url, onUp);
  try {
    await waitUntil(() => up.size === n, 'every client up before the restart');
    await broker.close();
    await new Promise((r) => setTimeout(r, DOWN_MS));
    up.clear();
    measuring = true;
    broker = await start(port);
    t0 = performance.now();
    const deadline = Date.now() + DEADLINE_MS;
    while (up.size < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (up.size < n) throw new Error(`only ${up.size}/${n} back within ${DEADLINE_MS} ms`);
    const buckets = new Map<number, number>();
    for (const s of stamps) buckets.set(Math.floor(s / 1000), (buckets.get(Math.floor(s / 1000)) ?? 0) + 1);
    return { allBackMs: Math.max(...stamps), peakPerSecond: Math.max(...buckets.values()) };
  } finally {
    await closeAll();
    await broker.close();
  }
}

async function waitUntil(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function run(): Promise<BenchRow[]> {
  const ours = await restartAndMeasure(N, async (url, onUp) => {
    const sessions: MqttSession[] = [];
    for (let i = 0; i < N; i++) {
      const id = `bench-${i}`;
      const s = new MqttSession({
        url,
        deviceId: id,
        username: id,
        password: 'x',
        topics: sessionTopics(id),
        reconnectMinMs: 1000,
        reconnectMaxMs: 60_000,
        log: silentLogger,
      });
      s.on('connected', () => onUp(i));
      s.start();
      sessions.push(s);
    }
    return async () => {
      await Promise.all(sessions.map((s) => s.stop()));
    };
  });

  const base = await restartAndMeasure(N, async (url, onUp) => {
    const clients: MqttClient[] = [];
    for (let i = 0; i < N; i++) {
      const id = `plain-${i}`;
      const c = mqtt.connect(url, { clientId: id, username: id, password: 'x', clean: false, reconnectPeriod: 1000 });
      c.on('connect', () => onUp(i));
      clients.push(c);
    }
    return async () => {
      await Promise.all(clients.map((c) => c.endAsync(true)));
    };
  });

  const note = `${N} sessions, broker down ${DOWN_MS} ms`;
  return [
    {
      name: 'broker restart: all sessions back',
      metric: 'ms after listen',
      ours: ours.allBackMs,
      baseline: base.allBackMs,
      baselineName: 'mqtt.js fixed 1 s',
      ratio: ours.allBackMs / base.allBackMs,
      note,
    },
    {
      name: 'broker restart: peak reconnect rate',
      metric: 'reconnects/s',
      ours: ours.peakPerSecond,
      baseline: base.peakPerSecond,
      baselineName: 'mqtt.js fixed 1 s',
      ratio: ours.peakPerSecond / base.peakPerSecond,
      note: 'lower is gentler on the broker',
    },
  ];
}
