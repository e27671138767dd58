import { Readable } from 'node:stream';
import type { Logger } from '../../protocol/log.js';

/**
 * The order in which a replica's cluster parts close (docs/scale.md, "Stopping a replica"), and
 * the work they must finish first. aedes closes its clients and then the emitter, in one
 * `broker.close()`; the clients' last acts (publishing their wills, deleting them from the
 * persistence) run after their sockets are gone and are not awaited by aedes. Closing a Redis
 * connection under them rejects their commands with ioredis' "Connection is closed.", and some of
 * those commands have no handler in the packages (aedes-persistence-redis 11 `putWill`/`delWill`
 * fire an `LREM` and forget it; mqemitter-redis 7 `close` fires `QUIT` and forgets it), which is
 * an unhandled rejection: the process dies with exit code 1 instead of stopping cleanly.
 *
 * The persistence's streams (retained messages for a SUBSCRIBE, a session's queued messages) are
 * piped by aedes with no error handler (aedes 1.2 handlers/subscribe.js), so one still reading
 * when its connection closes emits "Connection is closed." on a Readable nobody listens to.
 *
 * So: the clients close (aedes), then the work they started settles (wills published and
 * deleted), then the persistence's streams still open are destroyed (their clients are gone, and
 * a destroyed stream reports nothing more), then the persistence closes (its last act,
 * unsubscribing from the cluster's subscription broadcasts, still needs the emitter), then the
 * emitter.
 */

/** Promises (and callbacks) of an object's methods that have not settled yet. */
export class InFlight {
  private readonly pending = new Set<Promise<unknown>>();
  private readonly streams = new Set<Readable>();

  /** Wraps the named methods of `target` in place; a method given a callback counts until it is called. */
  track(target: object, names: readonly string[]): void {
    const t = target as Record<string, unknown>;
    for (const name of names) {
      const fn = t[name];
      if (typeof fn !== 'function') continue;
      t[name] = (...args: unknown[]): unknown => {
        const last = args.length - 1;
        const cb = args[last];
        if (typeof cb === 'function') {
          let release!: () => void;
          this.add(new Promise<void>((r) => (release = r)));
          args[last] = (...res: unknown[]) => {
            release();
            return (cb as (...a: unknown[]) => unknown)(...res);
          };
        }
        const out = (fn as (...a: unknown[]) => unknown).apply(target, args);
        if (out instanceof Promise) this.add(out);
        else if (out instanceof Readable) this.addStream(out);
        return out;
      };
    }
  }

  get size(): number {
    return this.pending.size;
  }

  /**
   * Resolves when nothing is pending, also work started by work that settled meanwhile (a will's
   * delete follows its publish), or at `deadlineMs` (a Redis that is gone never answers).
   */
  async settled(deadlineMs: number): Promise<boolean> {
    const end = Date.now() + deadlineMs;
    for (;;) {
      // One turn of the event loop first: callbacks that run on settling start the next step.
      await new Promise((r) => setImmediate(r));
      if (this.pending.size === 0) return true;
      const left = end - Date.now();
      if (left <= 0) return false;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled([...this.pending]), new Promise((r) => (timer = setTimeout(r, left)))]);
      clearTimeout(timer);
    }
  }

  /** Destroys the streams still open (their readers are gone once the clients are closed). */
  destroyStreams(): number {
    const n = this.streams.size;
    for (const s of [...this.streams]) s.destroy();
    this.streams.clear();
    return n;
  }

  private addStream(s: Readable): void {
    this.streams.add(s);
    s.once('close', () => this.streams.delete(s));
  }

  private add(p: Promise<unknown>): void {
    this.pending.add(p);
    // Only the bookkeeping's own handler: the caller still gets the rejection on `p` itself.
    const done = () => this.pending.delete(p);
    p.then(done, done);
  }
}

/** What aedes calls on its persistence that talks to Redis (aedes 1.2 lib/ and aedes.js). */
export const PERSISTENCE_METHODS = [
  'storeRetained',
  'addSubscriptions',
  'removeSubscriptions',
  'subscriptionsByClient',
  'subscriptionsByTopic',
  'cleanSubscriptions',
  'outgoingEnqueue',
  'outgoingEnqueueCombi',
  'outgoingUpdate',
  'outgoingClearMessageId',
  'incomingStorePacket',
  'incomingGetPacket',
  'incomingDelPacket',
  'putWill',
  'getWill',
  'delWill',
  'createRetainedStream',
  'createRetainedStreamCombi',
  'outgoingStream',
  'streamWill',
  'getClientList',
] as const;

interface RedisConnection {
  quit(): Promise<unknown>;
}

/**
 * mqemitter-redis' `close` sends QUIT on both of its connections without a handler and waits for
 * their 'end' events; Redis may close the socket before the QUIT reply is read, and then QUIT is
 * rejected with "Connection is closed.", which is the expected end of a connection we are closing.
 * Only that rejection is swallowed here; the 'end' event mqemitter-redis waits for still comes.
 */
export function quietQuit(conn: RedisConnection, log: Logger): void {
  const quit = conn.quit.bind(conn);
  conn.quit = () => {
    const p = quit();
    p.catch((err: unknown) => log.debug({ err: (err as Error).message }, 'Redis QUIT ended without its reply'));
    return p;
  };
}

/** How long a stopping replica waits for its clients' last work before closing Redis under it. */
export const CLOSE_SETTLE_MS = 3_000;
