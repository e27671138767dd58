import fsp from 'node:fs/promises';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { OutpostError } from '../protocol/errors/index.js';
import { silentLogger, type Logger, moduleLogger } from '../protocol/log.js';
import { writeFileAtomic } from '../agent/fs/atomic-file.js';
import { packageInfo } from '../agent/system/package-root.js';
import { openBlobStore, type BlobStore, type BlobStoreSpec } from './artifacts/index.js';
import { ensureAdminToken } from './auth/index.js';
import { openDb, type Db } from './db/index.js';
import { catalogRouter, createApiServer } from './http/index.js';
import type { FleetServices, FleetServicesOptions } from './fleet/start.js';
import { wireFleet } from './fleet/wire.js';
import { pageRoutes } from './ui/serve.js';
import { certCoversHost, checkTlsMaterial, type TlsMaterial } from './tls.js';
import { FailureLimiter } from './auth/failure-limiter.js';
import { resolveCloudLimits, type CloudLimitsInput } from './limits.js';
import { newReplicaId, type LeaseSettings } from './fleet/leadership.js';

export interface CloudOptions {
  /** Default: `$OUTPOST_DATA_DIR`, else `~/.outpost/cloud`. */
  dataDir?: string;
  /** Default 127.0.0.1 (local only); 0.0.0.0 to serve a fleet. */
  host?: string;
  /** Default 8080; 0 picks a free port. */
  httpPort?: number;
  /** Default 1883; 0 picks a free port. */
  mqttPort?: number;
  /**
   * MQTT over TLS: PEM certificate (plus intermediates) and key, and the CA devices must trust.
   * When given, `device provision` writes the mqtts:// URL and that CA into agent.json.
   * `port`: default 8883, or a free port when `httpPort` is 0.
   */
  tls?: TlsMaterial & { port?: number };
  /** MQTT over WebSocket (plain ws://, path /mqtt); absent = no listener, 0 = a free port. */
  wsPort?: number;
  /**
   * Abuse bounds (cloud-broker/limits.ts, docs/configuration.md "Cloud limits"): defaults, then
   * `OUTPOST_CLOUD_*` environment variables, then these.
   */
  limits?: CloudLimitsInput;
  /**
   * Scale-out (docs/scale.md). `redisUrl`: the embedded broker joins the other replicas through
   * Redis. `blobDir`: blobs in a folder the replicas share (NFS) instead of `<dataDir>/blobs`.
   * `publicHttpUrl` / `publicMqttUrl`: what devices are told (agent.json, signed blob URLs) when
   * they reach the cloud through a load balancer or a name, not at the listen address.
   */
  redisUrl?: string;
  blobDir?: string;
  /**
   * Blobs in an S3-compatible bucket instead of a folder (`--blob-store s3://...`, docs/scale.md
   * "Blobs in S3"); excludes `blobDir`. Credentials come from the AWS SDK's standard chain.
   */
  blobStore?: BlobStoreSpec;
  /**
   * The database: a `postgres://` / `postgresql://` URL (shared by the replicas), or a SQLite
   * file. Default: `<dataDir>/catalog.db`. Validated before anything starts (CLOUD_DB_URL_INVALID).
   */
  database?: string;
  publicHttpUrl?: string;
  publicMqttUrl?: string;
  /**
   * The fleet-leader lease that decides which replica runs the run-once work (docs/scale.md):
   * default 10 s, renewed every 3 s, or `OUTPOST_CLOUD_LEASE_TTL_MS` / `_RENEW_MS`.
   */
  lease?: Partial<LeaseSettings>;
  /**
   * Another MQTT broker instead of the embedded aedes (`--broker`); with `admin: 'dynsec'` the
   * cloud manages device logins in Mosquitto's dynamic-security plugin (docs/scale.md).
   */
  externalBroker?: FleetServicesOptions['externalBroker'];
  log?: Logger;
}

export interface Cloud {
  httpUrl: string;
  /** MQTT over TCP (always on). */
  mqttUrl: string | null;
  /** MQTT over TLS, when `tls` was given; then also the URL in provisioned agent.json files. */
  mqttsUrl: string | null;
  /** MQTT over WebSocket, when `wsPort` was given. */
  wsUrl: string | null;
  adminTokenFile: string;
  dataDir: string;
  db: Db;
  blobs: BlobStore;
  /** The broker, signing key and fleet (cloud-broker/fleet/). */
  fleet: FleetServices;
  close(): Promise<void>;
}

/** What `<dataDir>/cloud.json` holds so the CLI can find a running local cloud. */
export interface CloudInfo {
  http: string;
  mqtt: string | null;
  /** Present only when the MQTT/TLS listener is on. */
  mqtts?: string;
  /** Present only when the MQTT/WebSocket listener is on. */
  ws?: string;
  pid: number;
}

export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_HTTP_PORT = 8080;
export const DEFAULT_MQTT_PORT = 1883;
export const DEFAULT_MQTTS_PORT = 8883;
export const CLOUD_INFO_FILE = 'cloud.json';
export const DB_FILE = 'catalog.db';
export const BLOB_DIR = 'blobs';

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.OUTPOST_DATA_DIR || path.join(env.HOME || os.homedir(), '.outpost', 'cloud');
}

/**
 * Starts the cloud in this process: database, blob store, admin token, HTTP API (and, once
 * wired, the MQTT broker). Resolves when it listens; `close()` stops it and removes cloud.json.
 */
export async function startCloud(opts: CloudOptions = {}): Promise<Cloud> {
  const log = moduleLogger(opts.log ?? silentLogger, 'cloud');
  const dataDir = path.resolve(opts.dataDir ?? defaultDataDir());
  const host = opts.host ?? DEFAULT_HOST;
  // Checked before anything is created or listens: a bad key must not leave half a cloud running.
  const tls = opts.tls ? checkTlsMaterial(opts.tls) : null;
  const limits = resolveCloudLimits(opts.limits, process.env);
  // One limiter for HTTP and MQTT: a guesser gets the same budget whichever door it tries.
  const authLimiter = new FailureLimiter(limits.auth);
  if (tls?.publiclyTrusted === false) {
    log.warn(
      { issuer: tls.leaf.issuer },
      'the TLS certificate is not self-signed, no --tls-ca was given, and no public root CA issued it: provisioned devices get no cloud.ca and will refuse the broker unless their system trusts its CA; pass --tls-ca',
    );
  }
  await fsp.mkdir(dataDir, { recursive: true, mode: 0o700 });
  const db = openDb(opts.database ?? path.join(dataDir, DB_FILE), log);
  const cleanups: (() => Promise<void> | void)[] = [
    () => {
      db.close();
    },
  ];
  const closeAll = async (): Promise<void> => {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch (err) {
        log.warn({ err }, 'cleanup failed');
      }
    }
  };
  try {
    if (opts.blobDir && opts.blobStore)
      throw new OutpostError('CLOUD_BLOB_STORE_FLAGS', 'give blobDir or blobStore, not both');
    const blobs = await openBlobStore(
      opts.blobStore ?? { kind: 'directory', root: opts.blobDir ?? path.join(dataDir, BLOB_DIR) },
      // Each download served from S3 holds one socket: as many as the HTTP connections allowed.
      { log, maxSockets: limits.http.maxConnections },
    );
    cleanups.push(() => blobs.close());
    await blobs.init();
    const adminTokenFile = await ensureAdminToken(db, dataDir, log);
    // This process's name among the replicas (the lease holder GET /v1/health shows).
    const replica = newReplicaId();
    const router = catalogRouter({ db, blobs, version: packageVersion(), log, limits, replica });

    // ---- FLEET / BROKER WIRING (cloud-broker/broker/, cloud-broker/fleet/) -------------------
    // The fleet's routes go on the router now; the broker and fleet start below, once the HTTP
    // URL (written into agent.json and the signed blob URLs) is known.
    const fleetWiring = wireFleet(router, db);
    // The web page, served on the API's port (cloud-broker/ui/, docs/ui.md).
    router.add(...pageRoutes());
    let mqttUrl: string | null = null;
    // ------------------------------------------------------------------------------------------

    const server = createApiServer({ db, router, log, limits, authLimiter });
    const port = await listen(server, host, opts.httpPort ?? DEFAULT_HTTP_PORT);
    cleanups.push(() => closeServer(server));
    const httpUrl = `http://${urlHost(host)}:${port}`;

    // ---- FLEET / BROKER START (H6: cloud-broker/fleet/wire.ts) --------------------------------
    // Asking for a free HTTP port (tests) implies a free MQTT port unless one is given.
    const mqttPort = opts.mqttPort ?? (opts.httpPort === 0 ? 0 : DEFAULT_MQTT_PORT);
    const tlsPort = opts.tls?.port ?? (opts.httpPort === 0 ? 0 : DEFAULT_MQTTS_PORT);
    const fleet = await fleetWiring.start({
      db,
      dataDir,
      log,
      httpUrl: opts.publicHttpUrl ?? httpUrl,
      publicMqttUrl: opts.publicMqttUrl,
      redisUrl: opts.redisUrl,
      replicaId: replica,
      lease: opts.lease,
      externalBroker: opts.externalBroker,
      host,
      mqttPort,
      wsPort: opts.wsPort,
      limits: limits.broker,
      authLimiter,
      tls: tls ? { port: tlsPort, cert: tls.cert, key: tls.key, deviceCa: tls.deviceCa } : undefined,
    });
    cleanups.push(() => fleet.close());
    mqttUrl = fleet.broker?.url ?? fleet.mqttUrl;
    const mqttsUrl = fleet.broker?.tlsUrl ?? null;
    const wsUrl = fleet.broker?.wsUrl ?? null;
    if (tls && mqttsUrl && !certCoversHost(tls.leaf, new URL(mqttsUrl).hostname)) {
      log.warn(
        { mqtts: mqttsUrl, subject: tls.leaf.subject, altNames: tls.leaf.subjectAltName },
        'the TLS certificate does not name the host in the mqtts URL that devices get; their hostname check will refuse it',
      );
    }
    // ------------------------------------------------------------------------------------------

    const infoFile = path.join(dataDir, CLOUD_INFO_FILE);
    const info: CloudInfo = {
      http: httpUrl,
      mqtt: mqttUrl,
      ...(mqttsUrl ? { mqtts: mqttsUrl } : {}),
      ...(wsUrl ? { ws: wsUrl } : {}),
      pid: process.pid,
    };
    await writeFileAtomic(infoFile, JSON.stringify(info) + '\n');
    cleanups.push(() => removeInfoIfOurs(infoFile));
    log.info({ http: httpUrl, mqtt: mqttUrl, mqtts: mqttsUrl, ws: wsUrl, dataDir }, 'cloud listening');

    let closing: Promise<void> | null = null;
    return {
      httpUrl,
      mqttUrl,
      mqttsUrl,
      wsUrl,
      adminTokenFile,
      dataDir,
      db,
      blobs,
      fleet,
      close: () => (closing ??= closeAll().then(() => log.info('cloud stopped'))),
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

function listen(server: http.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(
        new OutpostError(
          'CLOUD_LISTEN_FAILED',
          `cannot listen on ${host}:${port} (${err.code ?? err.message}); pick another --http-port or 0 for a free one`,
          { host, port, cause: err.code },
        ),
      );
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Keep-alive and half-finished downloads must not hold the shutdown.
    server.closeAllConnections();
  });
}

/** A wildcard address is not a place to connect to: advertise loopback for it. */
function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

async function removeInfoIfOurs(file: string): Promise<void> {
  try {
    const info = JSON.parse(await fsp.readFile(file, 'utf8')) as Partial<CloudInfo>;
    if (info.pid === process.pid) await fsp.rm(file, { force: true });
  } catch {
    // Absent or unreadable: nothing of ours to remove.
  }
}

/** The version of the package this runs from (source, dist/ or an installed tarball). */
export function packageVersion(): string {
  return packageInfo().version;
}
