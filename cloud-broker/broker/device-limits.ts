import { Duplex } from 'node:stream';
import type { CloudLimits } from '../limits.js';

/**
 * Per-device bounds of the embedded broker (docs/security.md, "Bounded abuse"). Before these, a
 * device publishing 250 MB retained messages on its own topics took the cloud from 576 MB to
 * 1.33 GB RSS for good.
 *
 * - Packet size, at the socket: aedes 1.x has no maximum packet size and mqtt-packet buffers a
 *   whole PUBLISH before any hook sees it, so the only place to refuse a 250 MB packet without
 *   holding it is the byte stream. `guardPackets` reads each MQTT fixed header [MQTT-2.2.3] and
 *   destroys the connection as soon as a Remaining Length above the cap is announced.
 * - Payload size per topic kind, publish rate (token bucket) and publishes in flight, in
 *   authorizePublish (`PublishBudget`). MQTT 3.1.1 cannot refuse a single QoS 0/1 publish, so
 *   a violation closes the connection (aedes does that for a refused publish); the agent then
 *   reconnects with backoff, which is itself the throttle.
 */
export type PayloadKind = keyof CloudLimits['broker']['maxPayload'];

/** The largest packet any client may send: the largest payload plus room for topic and header. */
export function maxPacketBytes(limits: CloudLimits['broker']): number {
  return Math.max(...Object.values(limits.maxPayload)) + 64 * 1024;
}

/**
 * Wraps a connection so that a packet announcing more than `maxBytes` closes it before its body
 * is read. The wrapper is what aedes sees as the connection; it forwards writes, end and destroy.
 */
export function guardPackets(conn: Duplex, maxBytes: number, onTooLarge: (announced: number) => void): Duplex {
  // Fixed header state: 0 = at a packet start, 1..4 = reading Remaining Length byte n, 5 = body.
  let state = 0;
  let length = 0;
  let multiplier = 1;
  let left = 0;
  const scan = (chunk: Buffer): boolean => {
    let i = 0;
    while (i < chunk.length) {
      if (state === 0) {
        i++;
        state = 1;
        length = 0;
        multiplier = 1;
      } else if (state <= 4) {
        const b = chunk[i++];
        length += (b & 0x7f) * multiplier;
        multiplier *= 128;
        if (length > maxBytes) {
          onTooLarge(length);
          return false;
        }
        if ((b & 0x80) === 0) {
          left = length;
          state = left === 0 ? 0 : 5;
        } else if (state === 4) {
          // A fifth length byte is malformed [MQTT-2.2.3]; the parser would refuse it too.
          onTooLarge(length);
          return false;
        } else state++;
      } else {
        const n = Math.min(left, chunk.length - i);
        i += n;
        left -= n;
        if (left === 0) state = 0;
      }
    }
    return true;
  };
  const guard = new Duplex({
    read() {
      conn.resume();
    },
    write(chunk, enc, cb) {
      conn.write(chunk, enc, cb);
    },
    final(cb) {
      conn.end(cb);
    },
    destroy(err, cb) {
      conn.destroy();
      cb(err);
    },
  });
  conn.on('data', (chunk: Buffer) => {
    if (!scan(chunk)) {
      conn.destroy();
      return;
    }
    if (!guard.push(chunk)) conn.pause();
  });
  conn.on('end', () => guard.push(null));
  conn.on('close', () => guard.destroy());
  conn.on('error', (err) => guard.destroy(err));
  // aedes and logs read these off the connection; `transport` is the socket itself (TCP, TLS or
  // a WebSocket stream), for whoever must know what the device connected over.
  Object.assign(guard, {
    transport: conn,
    remoteAddress: (conn as { remoteAddress?: string }).remoteAddress,
    setNoDelay: () => undefined,
  });
  return guard;
}

export type Refusal = { reason: 'payload' | 'rate' | 'inflight'; detail: string };

/** One device connection's publish budget; pure apart from the clock it is given. */
export class PublishBudget {
  private tokens: number;
  private last: number;
  private inflight = 0;

  constructor(
    private readonly limits: CloudLimits['broker'],
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = limits.publishBurst;
    this.last = now();
  }

  /** Null admits the publish (and counts it in flight until `done`); otherwise why not. */
  admit(kind: PayloadKind, bytes: number): Refusal | null {
    // An unknown kind gets no allowance at all (deny by default).
    const max = this.limits.maxPayload[kind] ?? 0;
    if (bytes > max) return { reason: 'payload', detail: `${bytes} bytes on ${kind}, at most ${max}` };
    const t = this.now();
    this.tokens = Math.min(this.limits.publishBurst, this.tokens + ((t - this.last) / 1000) * this.limits.publishRate);
    this.last = t;
    if (this.tokens < 1)
      return {
        reason: 'rate',
        detail: `more than ${this.limits.publishRate}/s (burst ${this.limits.publishBurst})`,
      };
    if (this.inflight >= this.limits.maxInflight)
      return { reason: 'inflight', detail: `${this.inflight} publishes in flight, at most ${this.limits.maxInflight}` };
    this.tokens -= 1;
    this.inflight++;
    return null;
  }

  /** A publish admitted earlier was delivered (aedes `published`). */
  done(): void {
    if (this.inflight > 0) this.inflight--;
  }
}
