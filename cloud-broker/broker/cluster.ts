import { createRequire } from 'node:module';
import { OutpostError } from '../../protocol/errors/index.js';
import type { Logger } from '../../protocol/log.js';
import { CLOSE_SETTLE_MS, InFlight, PERSISTENCE_METHODS, quietQuit } from './cluster-close.js';

/**
 * What a replica's embedded aedes needs to join the others: a message emitter that carries every
 * publish to every replica (mqemitter-redis, over Redis pub/sub) and a persistence that they share
 * (aedes-persistence-redis: retained messages, subscriptions, QoS 1 in flight, wills). With both, a
 * device may connect to any replica: a retained desired state published by one replica is delivered
 * live by the others and stored where a device that connects later to any replica finds it, and a
 * second connection with the same client id on another replica closes the first (aedes announces
 * new clients on `$SYS/+/new/clients` through the emitter).
 */
export interface BrokerCluster {
  mq: unknown;
  persistence: unknown;
  /**
   * Settles the closed clients' work, then closes the persistence, then the emitter (aedes calls
   * it when the broker closes; calling it again waits for the same close).
   */
  close(): Promise<void>;
}

// Both packages are CommonJS with no types; they are loaded only when --redis is given.
const require = createRequire(import.meta.url);

export function parseRedisUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new OutpostError('USAGE', `--redis "${url}" is not a URL; give redis://HOST:PORT[/DB]`, { value: url });
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    throw new OutpostError('USAGE', `--redis "${url}" must start with redis:// or rediss://`, { value: url });
  return u;
}

/** ioredis connection options for a redis:// or rediss:// URL (host, port, db, user, password, TLS). */
export function redisOptions(url: string): Record<string, unknown> {
  const u = parseRedisUrl(url);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0)
    throw new OutpostError('USAGE', `--redis "${url}": the database after / must be a number`, { value: url });
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port ? Number(u.port) : 6379,
    db,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

interface SubscriptionStore {
  addSubscriptions(client: unknown, subs: object, cb?: unknown): Promise<void> | undefined;
}

/**
 * aedes 1.2 stores a SUBSCRIBE's whole list once per filter in it (handlers/subscribe.js,
 * storeSubscriptions), and aedes-persistence-redis broadcasts each store to the other brokers and
 * waits for it; with two filters in one SUBSCRIBE (the agent sends `desired` and `commands/#`
 * together) the second wait never ends, so the SUBACK never comes and the device gets nothing
 * (seen here with two brokers on one Redis: single-filter SUBSCRIBEs work, two-filter ones hang).
 * Agents already in the field subscribe that way, so the broker side makes the repeat a no-op:
 * the same list object (one packet) is stored once and its promise shared.
 */
function storeSubscriptionsOnce(p: SubscriptionStore): void {
  const add = p.addSubscriptions.bind(p);
  const stored = new WeakMap<object, Promise<void>>();
  p.addSubscriptions = (client, subs, cb) => {
    if (cb) return add(client, subs, cb);
    let once = stored.get(subs);
    if (!once) {
      once = add(client, subs) as Promise<void>;
      stored.set(subs, once);
    }
    return once;
  };
}

interface RedisLike {
  quit(): Promise<unknown>;
  on(event: 'error', cb: (err: Error) => void): unknown;
}

export function openBrokerCluster(redisUrl: string, log: Logger): BrokerCluster {
  parseRedisUrl(redisUrl);
  const mqemitterRedis = require('mqemitter-redis') as (o: object) => {
    close(cb: () => void): void;
    /** Its connections' errors; `on` itself subscribes to an MQTT topic, not to an event. */
    state: { on(event: 'error', cb: (err: Error) => void): void };
    subConn: RedisLike;
    pubConn: RedisLike;
  };
  // The main export: aedes 1.2 both awaits its methods and pipes its retained streams, which the
  // package's wrapper provides (its bare async class returns iterators, which aedes cannot pipe).
  const persistenceRedis = require('aedes-persistence-redis') as (o: object) => {
    destroy(): Promise<void>;
  };
  // The ioredis the persistence itself would load, so that its connection is one we can watch.
  const Redis = createRequire(require.resolve('aedes-persistence-redis'))('ioredis') as new (o: object) => RedisLike;
  // ioredis reconnects by itself with backoff, and errors while Redis is away are logged (once per
  // state change by ioredis), not thrown. mqemitter-redis re-emits its connections' errors on
  // `state`, an EventEmitter that throws when nobody listens: the listener is what keeps a Redis
  // error from being an uncaught exception that ends the replica.
  //
  // The subscriber connection is ours, without ioredis' ready check. ioredis 5 sends SUBSCRIBE as
  // soon as the socket connects (the command may run while Redis loads) but its ready check, INFO,
  // only after the CLIENT SETINFO replies: a SUBSCRIBE in between (aedes subscribing while the
  // connection is new or reconnecting) puts the connection in subscriber mode, where ioredis
  // refuses INFO, fails the ready check and drops the connection, and with it the replica's
  // subscriptions until the next reconnect. Seen once in CI as an uncaught "Connection in
  // subscriber mode"; test/integration/broker-cluster-subscribe-race.test.ts makes it happen on
  // purpose. A subscriber has nothing to wait for while Redis loads its data: its commands are
  // valid during loading, so the check buys it nothing.
  const subConn = new Redis({ ...redisOptions(redisUrl), enableReadyCheck: false });
  const mq = mqemitterRedis({ connectionString: redisUrl, subConn });
  mq.state.on('error', (err) => log.warn({ err: err.message }, 'MQTT cluster emitter: Redis error'));
  quietQuit(mq.subConn, log);
  quietQuit(mq.pubConn, log);
  // aedes-persistence-redis takes a ready connection as `conn`; without a listener of ours its
  // errors (Redis restarting) went to ioredis' "Unhandled error event" on stderr.
  const conn = new Redis(redisOptions(redisUrl));
  conn.on('error', (err) => log.warn({ err: err.message }, 'MQTT cluster persistence: Redis error'));
  const persistence = persistenceRedis({ conn });
  storeSubscriptionsOnce(persistence as unknown as SubscriptionStore);
  const inFlight = new InFlight();
  inFlight.track(persistence, PERSISTENCE_METHODS);
  inFlight.track(mq, ['emit']);

  const closeEmitter = mq.close.bind(mq);
  let closing: Promise<void> | null = null;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      if (!(await inFlight.settled(CLOSE_SETTLE_MS)))
        log.warn({ pending: inFlight.size }, 'MQTT cluster: closing Redis with work of closed clients unfinished');
      const streams = inFlight.destroyStreams();
      if (streams > 0) log.debug({ streams }, 'MQTT cluster: dropped the reads of closed clients');
      // Without a callback: the wrapper's callback form waits for a 'ready' event that only its
      // legacy `broker` setter emits, and aedes 1.x calls setup() instead, so it would never return.
      try {
        await persistence.destroy();
      } catch (err) {
        log.warn({ err }, 'MQTT cluster: closing the persistence failed');
      }
      await new Promise<void>((resolve) => closeEmitter(() => resolve()));
    })());
  // aedes ends broker.close() by closing the emitter, after its clients: that is the moment the
  // rest goes, in order (cluster-close.ts).
  mq.close = (cb) => {
    void close().then(cb);
  };
  return { mq, persistence, close };
}
