import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBrokerCluster, type BrokerCluster } from '../../cloud-broker/broker/cluster.js';
import { createLogger } from '../../protocol/log.js';
import { missingRedis, startRedis, type Redis } from '../helpers/engines/redis.js';
import { waitFor } from '../helpers/fleet.js';
import { skipForPackage } from '../helpers/requires.js';
import { useTempDir } from '../helpers/temp-dir.js';

/**
 * A replica's cluster emitter subscribing while its Redis connection is new (aedes subscribes as
 * clients connect, which can be while the connection is still being set up or reconnecting).
 * ioredis 5 writes a SUBSCRIBE at once on a connected socket but its own ready check (INFO) only
 * after the CLIENT SETINFO replies, so the SUBSCRIBE's reply puts the connection in subscriber
 * mode first; with the ready check on, ioredis then refused its own INFO, dropped the connection
 * and emitted an error that mqemitter-redis re-threw, uncaught (it ended a CI run). Here the
 * SUBSCRIBE is sent from the connection's 'connect' event, inside that window every time.
 */
const tmp = useTempDir('outpost-subrace-', 'all');

interface Emitter {
  on(topic: string, cb: (msg: { topic: string; payload: unknown }, done: () => void) => void, done?: () => void): void;
  emit(msg: { topic: string; payload: unknown }, cb?: (err?: Error) => void): void;
  subConn: { status: string; once(event: 'connect', cb: () => void): void; on(e: string, cb: () => void): void };
}

describe.skipIf(skipForPackage(missingRedis()))('cluster emitter subscribing while its connection is new', () => {
  let redis: Redis;
  const clusters: BrokerCluster[] = [];
  const lines: string[] = [];
  const log = createLogger({
    level: 'debug',
    destination: new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    }),
  });

  beforeAll(async () => {
    redis = await startRedis(tmp.dir);
  });
  afterAll(async () => {
    for (const c of clusters) await c.close();
    await redis?.stop();
  });

  it('keeps its connection and its subscription, and gets what another replica emits', async () => {
    const uncaught: Error[] = [];
    const onUncaught = (err: Error) => uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      const a = openBrokerCluster(redis.url, log);
      clusters.push(a);
      const mq = a.mq as Emitter;
      let connects = 0;
      mq.subConn.on('connect', () => connects++);
      const got: unknown[] = [];
      const subscribed = new Promise<void>((resolve) =>
        mq.subConn.once('connect', () =>
          mq.on(
            'race/topic',
            (msg, done) => {
              got.push(msg.payload);
              done();
            },
            resolve,
          ),
        ),
      );
      await subscribed;
      await waitFor('the subscriber connection ready', () => mq.subConn.status === 'ready');

      const b = openBrokerCluster(redis.url, log);
      clusters.push(b);
      const other = b.mq as Emitter;
      // Emitted until it arrives: the other replica's publishing connection may still be connecting.
      await waitFor('the message of the other replica', () => {
        if (got.length > 0) return true;
        other.emit({ topic: 'race/topic', payload: 'from b' });
        return false;
      });
      expect(got[0]).toBe('from b');
      expect(mq.subConn.status).toBe('ready');
      expect(connects).toBe(1);
      expect(uncaught).toEqual([]);
      expect(lines.filter((l) => l.includes('Redis error'))).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });
});
