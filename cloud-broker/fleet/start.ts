import { randomBytes } from 'node:crypto';
import type { Logger } from '../../protocol/log.js';
import { startBroker, type RunningBroker } from '../broker/broker.js';
import type { FailureLimiter } from '../auth/failure-limiter.js';
import type { Db } from '../db/open.js';
import { DEFAULT_CLOUD_LIMITS, type CloudLimits } from '../limits.js';
import type { Signer } from '../signing/sign.js';
import { ClusterSecrets } from '../secrets/store.js';
import { TrustService } from '../signing/trust.js';
import { BrokerLogins, type ServiceCredentials } from './auth.js';
import { DeviceCredentials, loadOrCreateCredentialKey } from './device-credentials.js';
import { DynsecLink } from './dynsec-link.js';
import { Fleet } from './fleet.js';
import { connectPublisher, type Publisher } from './publisher.js';
import { Leadership, newReplicaId, resolveLeaseSettings, type LeaseSettings } from './leadership.js';
import { RolloutScheduler } from './rollout-scheduler.js';
import { runOnceOnLeader } from './run-once.js';
import { Rollouts } from './rollouts.js';

export interface FleetServicesOptions {
  db: Db;
  dataDir: string;
  log: Logger;
  /** The cloud's HTTP URL as devices reach it (agent.json, blob downloads). */
  httpUrl: string;
  /** The embedded broker's listeners; ignored when `externalBroker` is given. */
  host: string;
  mqttPort: number;
  wsPort?: number;
  /**
   * MQTT over TLS. When given, devices are provisioned with the mqtts:// URL and `deviceCa` as
   * `cloud.ca` (null: they trust their system CAs). The service publisher stays on plain TCP
   * inside this process.
   */
  tls?: { port: number; cert: string | Buffer; key: string | Buffer; deviceCa?: string | null };
  /**
   * Use another MQTT broker (e.g. Mosquitto) instead of the embedded aedes. `admin: 'dynsec'`:
   * the user is a Mosquitto dynamic-security admin, and the cloud creates and deletes each
   * device's login there through $CONTROL (dynsec-link.ts); without it, device logins are the
   * broker operator's business (a password file, an auth plugin).
   */
  externalBroker?: {
    url: string;
    username: string;
    password: string;
    publicUrl?: string;
    ca?: string | Buffer;
    admin?: 'dynsec';
    /** How long a $CONTROL command may wait for its answer (default 10 s). */
    adminTimeoutMs?: number;
  };
  /** Desired-state lifetime in seconds (default 7 days). */
  lifetimeSeconds?: number;
  /** The embedded broker's per-device bounds and the shared failed-login limiter. */
  limits?: CloudLimits['broker'];
  authLimiter?: FailureLimiter;
  /** The MQTT URL written into agent.json instead of the listener's (a balancer, a DNS name). */
  publicMqttUrl?: string;
  /** Join the other replicas' brokers through Redis (cloud-broker/broker/cluster.ts). */
  redisUrl?: string;
  /** The rollout scheduler's timer period (default 1 s). */
  rolloutTickMs?: number;
  /** This replica's name in the fleet-leader lease (default: host/pid/random). */
  replicaId?: string;
  /** The fleet-leader lease (default 10 s, renewed every 3 s; OUTPOST_CLOUD_LEASE_* in the environment). */
  lease?: Partial<LeaseSettings>;
}

export interface FleetServices {
  fleet: Fleet;
  rollouts: Rollouts;
  scheduler: RolloutScheduler;
  /** Which replica runs the run-once work (cloud-broker/fleet/run-once.ts). */
  leadership: Leadership;
  /** The current online key (follows rotations). */
  signer: Signer;
  trust: TrustService;
  broker: RunningBroker | null;
  /** The embedded broker's device logins (batched, cached; auth.ts); null with an external broker. */
  logins: BrokerLogins | null;
  publisher: Publisher;
  /** The dynamic-security link when `externalBroker.admin` is 'dynsec', else null. */
  dynsec: DynsecLink | null;
  /** The MQTT URL devices connect to (written into agent.json): mqtts:// when TLS is on. */
  mqttUrl: string;
  close(): Promise<void>;
}

export const SERVICE_USERNAME = 'outpost-cloud';

/**
 * Starts the broker (unless external), the signing key, the fleet and its MQTT publisher. The
 * publisher republishes every stored desired state on each connect, which is what makes retained
 * desired states survive a broker restart (the embedded broker keeps retained messages in memory).
 */
export async function startFleetServices(o: FleetServicesOptions): Promise<FleetServices> {
  const log = o.log;
  // Checked before anything starts: a bad setting must not leave half a cloud running.
  const leaseSettings = resolveLeaseSettings(o.lease, process.env);
  // Keys every replica must share come from the database (imported once from an old data dir).
  const secrets = new ClusterSecrets(o.db);
  const trust = await TrustService.open(secrets, o.dataDir, log);
  const signer = trust.signer;
  let broker: RunningBroker | null = null;
  let logins: BrokerLogins | null = null;
  let creds: ServiceCredentials & { url: string };
  let mqttUrl: string;
  let deviceCa: string | undefined;
  if (o.externalBroker) {
    creds = { url: o.externalBroker.url, username: o.externalBroker.username, password: o.externalBroker.password };
    mqttUrl = o.externalBroker.publicUrl ?? o.externalBroker.url;
  } else {
    // A fresh service secret per start: it never leaves this process.
    const service = { username: SERVICE_USERNAME, password: randomBytes(32).toString('base64url') };
    const limits = o.limits ?? DEFAULT_CLOUD_LIMITS.broker;
    logins = new BrokerLogins(o.db, service, { ttlMs: limits.loginCacheTtlMs, max: limits.loginCacheMax });
    broker = await startBroker({
      host: o.host,
      port: o.mqttPort,
      wsPort: o.wsPort,
      tls: o.tls,
      authenticate: logins.authenticate,
      onDeviceRevoked: (id) => logins?.forget(id),
      log,
      limits: o.limits,
      authLimiter: o.authLimiter,
      redisUrl: o.redisUrl,
    });
    creds = { ...service, url: broker.url };
    mqttUrl = o.publicMqttUrl ?? broker.tlsUrl ?? broker.url;
    deviceCa = o.tls?.deviceCa ?? undefined;
  }
  let fleetRef: Fleet | null = null;
  const dynsec =
    o.externalBroker?.admin === 'dynsec'
      ? new DynsecLink({
          store: () => fleetRef!.store,
          credentials: new DeviceCredentials(o.db, loadOrCreateCredentialKey(secrets)),
          username: o.externalBroker.username,
          log,
          timeoutMs: o.externalBroker.adminTimeoutMs,
        })
      : null;
  const fleet = new Fleet({
    db: o.db,
    signer,
    provisionRoot: () => trust.provisionRoot(),
    log,
    urls: { http: o.httpUrl, mqtt: mqttUrl, ca: deviceCa },
    lifetimeSeconds: o.lifetimeSeconds,
    // Every replica forgets the device's cached logins and drops its connections (the brokers' bus).
    onRevoke: (id) => broker?.revokeDevice(id),
    ...dynsec?.fleetHooks(),
  });
  fleetRef = fleet;
  const leadership = new Leadership({ db: o.db, replica: o.replicaId ?? newReplicaId(), settings: leaseSettings, log });
  let republishIfLeader = (): void => undefined;
  let publisher: Publisher;
  try {
    publisher = await connectPublisher({
      url: creds.url,
      username: creds.username,
      password: creds.password,
      log,
      tls: o.externalBroker?.ca ? { ca: o.externalBroker.ca } : undefined,
      control: dynsec?.control(),
      onMessage: (topic, payload) => fleet.ingest(topic, payload),
      onConnect: () => {
        // Each connect may meet a restarted or restored broker: its logins follow the database.
        void dynsec?.reconcile().catch((err: unknown) => log.error({ err }, 'broker reconciliation failed'));
        republishIfLeader();
      },
    });
  } catch (err) {
    await broker?.close();
    throw err;
  }
  try {
    await dynsec?.ready();
  } catch (err) {
    await publisher.close();
    throw err;
  }
  fleet.attach(publisher);
  const rollouts = new Rollouts(fleet, log);
  const scheduler = new RolloutScheduler(fleet, rollouts, {
    log,
    tickMs: o.rolloutTickMs,
    fence: () => leadership.fence(),
  });
  fleet.onDeviceEvent = () => scheduler.onDeviceEvent();
  const runOnce = runOnceOnLeader({ leadership, fleet, scheduler, publisher, log });
  republishIfLeader = runOnce.republish;
  // Claimed after the publisher is attached: a batch the scheduler sends must be published, not only stored.
  leadership.start();
  return {
    fleet,
    rollouts,
    scheduler,
    leadership,
    signer,
    trust,
    broker,
    logins,
    publisher,
    dynsec,
    mqttUrl,
    async close() {
      leadership.stopRenewing();
      await scheduler.stop();
      // The queued reports are flushed while this replica still holds the lease, then it is given up,
      // and the election's publishes finish before the broker goes.
      fleet.stop();
      leadership.stop();
      await runOnce.settled();
      await publisher.close();
      await broker?.close();
    },
  };
}
