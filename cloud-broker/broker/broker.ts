import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer } from 'node:tls';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { OutpostError } from '../../protocol/errors/index.js';
import { parseDeviceTopic } from '../../protocol/topics.js';
import { moduleLogger, type Logger } from '../../protocol/log.js';
import { FailureLimiter } from '../auth/failure-limiter.js';
import { DEFAULT_CLOUD_LIMITS, type CloudLimits } from '../limits.js';
import { openBrokerCluster } from './cluster.js';
import { canPublish, canSubscribe, clientIdAllowed, type Identity } from './acl.js';
import { guardPackets, maxPacketBytes, PublishBudget, type PayloadKind } from './device-limits.js';

/** Checks a username/password pair; null refuses the connection. Must not throw for bad input. */
export type Authenticate = (username: string, password: Buffer) => Promise<Identity | null>;

export interface BrokerOptions {
  host: string;
  /** MQTT over TCP; 0 picks a free port. */
  port: number;
  /** MQTT over WebSocket (path /mqtt and /); omitted = no WebSocket listener, 0 = free port. */
  wsPort?: number;
  /** MQTT over TLS (PEM strings or buffers). */
  tls?: { port: number; cert: string | Buffer; key: string | Buffer };
  authenticate: Authenticate;
  log: Logger;
  /** Per-device payload, rate and in-flight bounds (cloud-broker/limits.ts); defaults when absent. */
  limits?: CloudLimits['broker'];
  /** Failed-password limiter, shared with the HTTP API; one is made when absent. */
  authLimiter?: FailureLimiter;
  /** Join other replicas through Redis (`--redis`): see cluster.ts. Absent: one broker, in memory. */
  redisUrl?: string;
  /**
   * Called on every replica when a device is revoked on any of them (revokeDevice), before its
   * connections are closed: the login cache forgets it (cloud-broker/fleet/auth.ts).
   */
  onDeviceRevoked?: (deviceId: string) => void;
}

export interface RunningBroker {
  url: string;
  wsUrl: string | null;
  tlsUrl: string | null;
  broker: Aedes;
  /** Closes every connection of a device on this replica. */
  disconnectDevice(deviceId: string): number;
  /**
   * The device's credentials were revoked: on this replica at once, and on every replica joined
   * through Redis as soon as the message arrives, `onDeviceRevoked` runs and the device's
   * connections are closed. Resolves once the message is handed to the bus.
   */
  revokeDevice(deviceId: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * The replicas' own message for a revocation, on the brokers' bus (mqemitter, through Redis with
 * --redis). No client can reach it: aedes refuses client publishes under $SYS/, the ACL refuses
 * every subscription outside a device's own topics (and the service's root), and wildcard
 * filters never match topics that start with `$` [MQTT-4.7.2-1].
 */
const REVOKED_TOPIC = '$SYS/outpost/device-revoked';

function authError(code: 2 | 3 | 4 | 5, message: string): AuthenticateError {
  return Object.assign(new Error(message), { returnCode: code }) as AuthenticateError;
}

async function listen(server: NetServer | HttpServer, port: number, host: string, what: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) =>
      reject(
        new OutpostError(
          'BROKER_LISTEN_FAILED',
          `MQTT ${what} listener cannot listen on ${host}:${port}: ${err.message}; pick another port (--mqtt-port; 0 picks a free one) or stop what holds it`,
          { listener: what, host, port },
        ),
      );
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

/** A wildcard address is not a place to connect to: advertise loopback for it. */
function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * Starts the embedded aedes broker with Outpost's authentication and ACL. Persistence is aedes's
 * in-memory default, or Redis shared with the other replicas when `redisUrl` is given; either way
 * retained desired states are re-published by the fleet from the database at every start
 * (docs/protocol.md), so the database, not the broker, is the source of truth.
 */
export async function startBroker(opts: BrokerOptions): Promise<RunningBroker> {
  const log = moduleLogger(opts.log, 'broker');
  const limits = opts.limits ?? DEFAULT_CLOUD_LIMITS.broker;
  const limiter = opts.authLimiter ?? new FailureLimiter();
  const identities = new WeakMap<Client, Identity>();
  const budgets = new WeakMap<Client, PublishBudget>();
  const byDevice = new Map<string, Set<Client>>();
  const sourceOf = (client: Client): string =>
    (client.conn as unknown as { remoteAddress?: string }).remoteAddress ?? 'unknown';

  const cluster = opts.redisUrl ? openBrokerCluster(opts.redisUrl, log) : null;
  const broker = await Aedes.createBroker({
    ...(cluster ? { mq: cluster.mq, persistence: cluster.persistence } : {}),
    // QoS 2 publishes awaiting PUBREL count against the same in-flight bound as the others.
    maxInflightInbound: limits.maxInflight,
    authenticate(client, username, password, done) {
      if (!username || !password) {
        done(authError(4, 'username and password required'), false);
        return;
      }
      const source = sourceOf(client);
      const blocked = limiter.check(source, username);
      if (blocked) {
        // 3.1.1 has no "slow down" code; 3 (server unavailable) makes clients retry later.
        done(authError(3, `too many failed logins; retry after ${blocked.retryAfterSeconds} s`), false);
        return;
      }
      opts.authenticate(username, Buffer.from(password)).then(
        (id) => {
          if (!id) {
            const tripped = limiter.fail(source, username);
            if (tripped.source || tripped.credential)
              log.warn(
                { source, username, by: tripped.source ? 'source' : 'credential', limits: limiter.limits },
                'failed MQTT logins over the limit; refusing this address/username until the window ends',
              );
            else log.debug({ username, clientId: client.id }, 'refused connection: bad username or password');
            done(authError(4, 'bad username or password'), false);
          } else if (!clientIdAllowed(id, client.id)) {
            log.warn({ username, clientId: client.id }, 'refused connection: client id does not belong to this device');
            done(authError(2, 'client id must be the device id or "<deviceId>:<suffix>"'), false);
          } else {
            identities.set(client, id);
            if (id.kind === 'device') {
              let set = byDevice.get(id.deviceId);
              if (!set) byDevice.set(id.deviceId, (set = new Set()));
              // One connection per device: the new one takes over (see takeOver).
              takeOver(set, client, id.deviceId);
              set.add(client);
              budgets.set(client, new PublishBudget(limits));
            }
            done(null, true);
          }
        },
        (err: unknown) => {
          log.error({ err, username }, 'authentication failed with an error');
          done(authError(5, 'authentication unavailable'), false);
        },
      );
    },
    authorizeSubscribe(client, sub, done) {
      const id = identities.get(client);
      if (id && canSubscribe(id, sub.topic)) {
        done(null, sub);
        return;
      }
      log.warn({ clientId: client.id, topic: sub.topic }, 'refused subscription');
      // A null subscription is answered with SUBACK 0x80 for this filter only [MQTT-3.9.3-2].
      done(null, null);
    },
    authorizePublish(client, packet, done) {
      // client is null for the broker's own publishes (none in Outpost, but aedes allows them).
      if (client === null) {
        done(null);
        return;
      }
      const id = identities.get(client);
      if (!id || !canPublish(id, packet.topic)) {
        log.warn({ clientId: client.id, topic: packet.topic }, 'refused publish; closing the connection');
        done(new Error(`not allowed to publish to ${packet.topic}`));
        return;
      }
      const budget = budgets.get(client);
      // canPublish passed, so this is one of the device's own writable topics.
      const kind = parseDeviceTopic(packet.topic)?.kind as PayloadKind;
      const refused = budget?.admit(kind, packet.payload.length) ?? null;
      if (refused) {
        log.warn(
          { clientId: client.id, topic: packet.topic, ...refused },
          'publish over the device limits; closing the connection',
        );
        done(new Error(`publish refused: ${refused.detail}`));
        return;
      }
      done(null);
    },
    published(_packet, client, done) {
      if (client) budgets.get(client)?.done();
      done();
    },
  });

  /**
   * A second connection of the same device takes over: the older ones are closed without their
   * Last Will (the device is not offline, it reconnected). Taking over rather than refusing is
   * what MQTT does for a repeated client id [MQTT-3.1.4-2], and it matters here: a device whose
   * TCP connection died without a FIN (power cut, NAT timeout) would otherwise be locked out
   * until the broker's keepalive check noticed, up to 1.5 keepalives. A thief with the token can
   * kick the device off this way, but a thief with the token can already do worse; the answer to
   * that is revoking the token (`outpost device provision` again).
   */
  function takeOver(set: Set<Client>, fresh: Client, deviceId: string): void {
    for (const old of [...set]) {
      if (old === fresh) continue;
      set.delete(old);
      (old as Client & { will: unknown }).will = null;
      log.info({ device: deviceId, old: old.id, new: fresh.id }, 'a new connection of the device took over');
      old.close();
    }
  }

  const revokedHere = (deviceId: string): void => {
    opts.onDeviceRevoked?.(deviceId);
    const set = byDevice.get(deviceId);
    if (!set) return;
    for (const c of [...set]) c.close();
    byDevice.delete(deviceId);
  };
  await new Promise<void>((resolve) =>
    broker.subscribe(
      REVOKED_TOPIC,
      (packet: { payload: Buffer | string }, cb: () => void) => {
        revokedHere(packet.payload.toString());
        cb();
      },
      () => resolve(),
    ),
  );

  broker.on('clientDisconnect', (client) => forget(client));
  broker.on('clientError', (client, err) => log.debug({ clientId: client.id, err: err.message }, 'client error'));
  function forget(client: Client): void {
    const id = identities.get(client);
    if (id?.kind === 'device') byDevice.get(id.deviceId)?.delete(client);
  }

  const servers: (NetServer | HttpServer)[] = [];
  let wss: WebSocketServer | null = null;
  try {
    const maxPacket = maxPacketBytes(limits);
    const handle = (conn: Duplex, req?: IncomingMessage): void => {
      const guarded = guardPackets(conn, maxPacket, (announced) =>
        log.warn(
          { source: (conn as { remoteAddress?: string }).remoteAddress, announced, max: maxPacket },
          'MQTT packet over the size limit; closing the connection',
        ),
      );
      broker.handle(guarded, req);
    };
    const tcp = createNetServer((socket) => handle(socket));
    servers.push(tcp);
    const port = await listen(tcp, opts.port, opts.host, 'tcp');
    const url = `mqtt://${urlHost(opts.host)}:${port}`;

    let tlsUrl: string | null = null;
    if (opts.tls) {
      const tls = createTlsServer({ cert: opts.tls.cert, key: opts.tls.key }, (socket) => handle(socket));
      servers.push(tls);
      tlsUrl = `mqtts://${urlHost(opts.host)}:${await listen(tls, opts.tls.port, opts.host, 'tls')}`;
    }

    let wsUrl: string | null = null;
    if (opts.wsPort !== undefined) {
      const http = createHttpServer((_req, res) => {
        res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket: upgrade required\n');
      });
      servers.push(http);
      // ws buffers a whole frame (100 MiB by default) before the packet guard sees it.
      wss = new WebSocketServer({ server: http, maxPayload: maxPacket + 1024 });
      wss.on('connection', (ws, req) => handle(createWebSocketStream(ws), req));
      wsUrl = `ws://${urlHost(opts.host)}:${await listen(http, opts.wsPort, opts.host, 'websocket')}/mqtt`;
    }
    log.info({ url, tlsUrl, wsUrl }, 'MQTT broker listening');

    let closed: Promise<void> | null = null;
    return {
      url,
      wsUrl,
      tlsUrl,
      broker,
      disconnectDevice(deviceId: string): number {
        const set = byDevice.get(deviceId);
        if (!set) return 0;
        const n = set.size;
        for (const c of [...set]) c.close();
        byDevice.delete(deviceId);
        return n;
      },
      revokeDevice(deviceId: string): Promise<void> {
        // Here at once (no wait for the bus), then everywhere; this replica runs it twice, harmlessly.
        revokedHere(deviceId);
        const packet = {
          cmd: 'publish',
          topic: REVOKED_TOPIC,
          payload: Buffer.from(deviceId),
          qos: 0,
          retain: false,
          dup: false,
        } as const;
        return new Promise<void>((resolve, reject) =>
          broker.publish(packet as never, (err?: Error) => (err ? reject(err) : resolve())),
        );
      },
      close(): Promise<void> {
        closed ??= (async () => {
          // No new connections first (close() stops accepting; it calls back once the open ones
          // are gone), then aedes closes its clients and, with --redis, the cluster in its order
          // (cluster.ts: the clients' last work, the persistence, the emitter).
          const stopped = servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
          wss?.close();
          await new Promise<void>((resolve) => broker.close(() => resolve()));
          await cluster?.close();
          await Promise.all(stopped);
          log.info('MQTT broker closed');
        })();
        return closed;
      },
    };
  } catch (err) {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    await cluster?.close();
    for (const s of servers) s.close();
    throw err;
  }
}
