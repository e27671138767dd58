import path from 'node:path';
import { printResult, type Command } from '../../../protocol/cli.js';
import { OutpostError } from '../../../protocol/errors/index.js';
import { createLogger } from '../../../protocol/log.js';
import {
  DEFAULT_HOST,
  DEFAULT_HTTP_PORT,
  DEFAULT_MQTT_PORT,
  DEFAULT_MQTTS_PORT,
  defaultDataDir,
  startCloud,
} from '../../cloud.js';
import { parseRedisUrl } from '../../broker/cluster.js';
import { isPostgresUrl, parsePostgresUrl } from '../../db/pg-url.js';
import { readTlsFiles, type TlsMaterial } from '../../tls.js';
import { defineCommand, stringFlag, type FlagValues } from '../args.js';
import { blobStoreFlags } from '../blob-store-flags.js';
import { brokerFlags } from '../broker-flags.js';

const USAGE = `outpost cloud start [--data-dir DIR] [--host H] [--http-port N] [--mqtt-port N]
                    [--tls-cert FILE --tls-key FILE [--tls-ca FILE] [--mqtt-tls-port N]]
                    [--mqtt-ws-port N] [--database URL] [--redis URL]
                    [--blob-dir DIR | --blob-store s3://BUCKET[/PREFIX] [--s3-endpoint URL] [--s3-region R] [--s3-addressing path|virtual]]
                    [--public-http URL] [--public-mqtt URL]
                    [--broker mqtt://USER:PASSWORD@HOST:PORT [--broker-admin dynsec|none] [--broker-ca FILE]] [--json]

Runs the cloud in this process until SIGINT or SIGTERM: the catalog (SQLite, or PostgreSQL with
--database), the blob store, the
HTTP API, the embedded MQTT broker (aedes, with per-device credentials and ACL) and the fleet's
signed desired-state publisher. At first start it creates <data dir>/admin.token (mode 0600) and,
on an empty database, the signing key (kept in the database, shared by replicas). While it runs, <data dir>/cloud.json tells the
other outpost verbs on this machine where it listens.

  --data-dir DIR       where the database, blobs, keys and tokens live (default: $OUTPOST_DATA_DIR, else ~/.outpost/cloud)
  --host H             address to listen on (default ${DEFAULT_HOST}; 0.0.0.0 to serve other machines)
  --http-port N        HTTP API port (default ${DEFAULT_HTTP_PORT}; 0 picks a free port)
  --mqtt-port N        MQTT port (default ${DEFAULT_MQTT_PORT}, or a free port when --http-port is 0; 0 picks a free port)
  --tls-cert FILE      PEM server certificate (optionally followed by its intermediates): turns on MQTT over TLS.
                       Devices provisioned from then on get the mqtts:// URL in agent.json
  --tls-key FILE       PEM private key of --tls-cert (unencrypted); required with --tls-cert
  --tls-ca FILE        PEM CA certificate that devices must trust, written into agent.json as cloud.ca
                       (default: the certificate itself when it is self-signed, else none: devices use their system CAs)
  --mqtt-tls-port N    MQTT/TLS port (default ${DEFAULT_MQTTS_PORT}, or a free port when --http-port is 0; 0 picks a free port)
  --mqtt-ws-port N     also serve MQTT over WebSocket (plain ws://, path /mqtt) on this port; 0 picks a free port
  --database URL       keep the catalog and fleet in PostgreSQL (postgres://USER[:PASSWORD]@HOST[:PORT]/DB), shared by
                       the replicas, instead of <data-dir>/catalog.db (default: $OUTPOST_DATABASE, else SQLite).
                       A SQLite file path is also accepted. Prefer PGPASSWORD to a password in the URL
  --redis URL          join the other replicas' MQTT brokers through this Redis (redis://HOST:PORT[/DB])
  --blob-dir DIR       keep blobs in DIR, shared by the replicas (e.g. NFS), instead of <data-dir>/blobs
  --blob-store URL     keep blobs in an S3-compatible bucket, s3://BUCKET[/PREFIX], shared by the replicas
                       (instead of a folder). Credentials come from the AWS SDK's chain: AWS_ACCESS_KEY_ID and
                       AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the instance's role; they are never logged
  --s3-endpoint URL    an S3-compatible server (http(s)://HOST[:PORT]: MinIO, Ceph RGW ...) instead of AWS
  --s3-region R        the bucket's region (default: AWS_REGION or the profile's; us-east-1 with --s3-endpoint)
  --s3-addressing A    path (bucket in the URL path; default with --s3-endpoint) or virtual (bucket.host; default on AWS)
  --public-http URL    the HTTP URL devices are given (agent.json, blob URLs), e.g. the load balancer's
  --public-mqtt URL    the MQTT URL devices are given (mqtt:// or mqtts://), e.g. the load balancer's
  --broker URL         use this MQTT broker instead of the embedded one (no MQTT listener here); USER is the
                       cloud's service account there; the password may come from $OUTPOST_BROKER_PASSWORD
                       instead of the URL, and is never printed
  --broker-admin A     dynsec (default): USER is a Mosquitto dynamic-security admin and the cloud creates and
                       deletes device logins through $CONTROL; none: device logins are the broker's business
  --broker-ca FILE     PEM CA that the mqtts:// --broker's certificate chains to
  --json               print one line {"http", "mqtt", "adminTokenFile"} once listening, plus "mqtts"
                       and "ws" when those listeners are on
Exit codes: 0 after a clean stop; 2 for a wrong flag (USAGE, CLOUD_TLS_FLAGS, CLOUD_BROKER_FLAGS,
CLOUD_DB_URL_INVALID, CLOUD_BLOB_STORE_FLAGS); 3 for an unusable TLS file (CLOUD_TLS_INVALID); 7 when a port cannot be bound
(CLOUD_LISTEN_FAILED, BROKER_LISTEN_FAILED), the --broker cannot be reached (BROKER_UNREACHABLE) or
PostgreSQL cannot be reached (CLOUD_DB_UNAVAILABLE) or the S3 bucket cannot be used (BLOB_STORE_UNAVAILABLE,
BLOB_STORE_REFUSED).
Logs (pino JSON) go to stderr.`;

function parsePort(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(n) || n > 65535)
    throw new OutpostError('USAGE', `--${flag} "${value}" is not a port (0 to 65535; 0 picks a free one)`, {
      flag,
      value,
    });
  return n;
}

/** An advertised URL flag: absolute, one of `schemes`, no trailing slash kept. */
function publicUrl(value: string | undefined, flag: string, schemes: string[]): string | undefined {
  if (value === undefined) return undefined;
  let u: URL | null = null;
  try {
    u = new URL(value);
  } catch {
    u = null;
  }
  if (!u || !schemes.includes(u.protocol) || (u.pathname !== '/' && u.pathname !== ''))
    throw new OutpostError(
      'USAGE',
      `--${flag} "${value}" must be a ${schemes.map((x) => `${x}//`).join(' or ')} URL with a host and an optional port, no path`,
      { flag, value },
    );
  return `${u.protocol}//${u.host}`;
}

/** The TLS flags, checked for fit before any file is read; null when TLS is off. */
function tlsFlags(values: FlagValues, cwd: string): { cert: string; key: string; ca?: string } | null {
  const cert = stringFlag(values, 'tls-cert');
  const key = stringFlag(values, 'tls-key');
  const ca = stringFlag(values, 'tls-ca');
  if ((cert === undefined) !== (key === undefined)) {
    const [given, missing] = cert === undefined ? ['--tls-key', '--tls-cert'] : ['--tls-cert', '--tls-key'];
    throw new OutpostError(
      'CLOUD_TLS_FLAGS',
      `${given} needs ${missing}: the certificate and its private key go together`,
      { given, missing },
    );
  }
  if (cert === undefined || key === undefined) {
    const orphan = ['tls-ca', 'mqtt-tls-port'].find((f) => stringFlag(values, f) !== undefined);
    if (orphan)
      throw new OutpostError(
        'CLOUD_TLS_FLAGS',
        `--${orphan} needs --tls-cert and --tls-key (MQTT over TLS is off without them)`,
        { given: `--${orphan}` },
      );
    return null;
  }
  return {
    cert: path.resolve(cwd, cert),
    key: path.resolve(cwd, key),
    ca: ca === undefined ? undefined : path.resolve(cwd, ca),
  };
}

/** Two listeners on one fixed port would fail at bind time, after the database was opened. */
function checkDistinctPorts(ports: Record<string, number | undefined>): void {
  const seen = new Map<number, string>();
  for (const [flag, port] of Object.entries(ports)) {
    if (port === undefined || port === 0) continue;
    const other = seen.get(port);
    if (other)
      throw new OutpostError(
        'USAGE',
        `--${flag} and --${other} are both ${port}; each listener needs its own port (0 picks a free one)`,
        { flags: [other, flag], port },
      );
    seen.set(port, flag);
  }
}

/** A PostgreSQL URL (validated, kept as given), or a SQLite file path (resolved); undefined = the default. */
function databaseFlag(value: string | undefined, cwd: string): string | undefined {
  if (value === undefined) return undefined;
  if (isPostgresUrl(value) || /^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return parsePostgresUrl(value);
  return path.resolve(cwd, value);
}

function optionalUrls(mqtts: string | null, ws: string | null): { mqtts?: string; ws?: string } {
  return { ...(mqtts ? { mqtts } : {}), ...(ws ? { ws } : {}) };
}

/** `outpost cloud start`: runs until ctx.signal aborts, then closes everything and returns 0. */
export const cloudStart: Command = defineCommand({
  usage: USAGE,
  options: {
    'data-dir': { type: 'string' },
    host: { type: 'string' },
    'http-port': { type: 'string' },
    'mqtt-port': { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    'tls-ca': { type: 'string' },
    'mqtt-tls-port': { type: 'string' },
    'mqtt-ws-port': { type: 'string' },
    database: { type: 'string' },
    redis: { type: 'string' },
    'blob-dir': { type: 'string' },
    'blob-store': { type: 'string' },
    's3-endpoint': { type: 'string' },
    's3-region': { type: 'string' },
    's3-addressing': { type: 'string' },
    'public-http': { type: 'string' },
    'public-mqtt': { type: 'string' },
    broker: { type: 'string' },
    'broker-admin': { type: 'string' },
    'broker-ca': { type: 'string' },
  },
  run: async ({ values, json }, ctx) => {
    // An absent --mqtt-port stays undefined: startCloud then picks a free one when --http-port is
    // 0, so "--http-port 0" alone never collides with another cloud on 1883. Same for TLS.
    const httpPort = parsePort(stringFlag(values, 'http-port'), 'http-port') ?? DEFAULT_HTTP_PORT;
    const mqttPort = parsePort(stringFlag(values, 'mqtt-port'), 'mqtt-port');
    const tlsPort = parsePort(stringFlag(values, 'mqtt-tls-port'), 'mqtt-tls-port');
    const wsPort = parsePort(stringFlag(values, 'mqtt-ws-port'), 'mqtt-ws-port');
    const external = await brokerFlags(values, ctx.env, ctx.cwd);
    const files = tlsFlags(values, ctx.cwd);
    checkDistinctPorts({
      'http-port': httpPort,
      'mqtt-port': mqttPort,
      'mqtt-tls-port': tlsPort,
      'mqtt-ws-port': wsPort,
    });
    const host = stringFlag(values, 'host') ?? DEFAULT_HOST;
    const dataDir = stringFlag(values, 'data-dir') ?? defaultDataDir(ctx.env);
    const tls: (TlsMaterial & { port?: number }) | undefined = files
      ? { ...(await readTlsFiles(files)), port: tlsPort }
      : undefined;
    // stdout is for the one result line; logs go to stderr.
    const log = createLogger({ name: 'outpost-cloud', destination: ctx.stderr });
    if (ctx.signal.aborted) return 0;
    const redisUrl = stringFlag(values, 'redis');
    if (redisUrl !== undefined) parseRedisUrl(redisUrl);
    const database = databaseFlag(stringFlag(values, 'database') ?? (ctx.env.OUTPOST_DATABASE || undefined), ctx.cwd);
    const blobs = blobStoreFlags(values, ctx.cwd);
    const publicHttpUrl = publicUrl(stringFlag(values, 'public-http'), 'public-http', ['http:', 'https:']);
    const publicMqttUrl = publicUrl(stringFlag(values, 'public-mqtt'), 'public-mqtt', ['mqtt:', 'mqtts:']);
    const cloud = await startCloud({
      dataDir,
      host,
      httpPort,
      mqttPort,
      tls,
      wsPort,
      log,
      redisUrl,
      database,
      blobStore: blobs,
      publicHttpUrl,
      publicMqttUrl,
      externalBroker: external && { ...external, publicUrl: publicMqttUrl },
    });
    const lines = [
      'Outpost cloud listening',
      `  http:        ${cloud.httpUrl}`,
      `  mqtt:        ${cloud.mqttUrl ?? '(none)'}`,
      ...(cloud.mqttsUrl ? [`  mqtts:       ${cloud.mqttsUrl} (devices provisioned now get this URL)`] : []),
      ...(cloud.wsUrl ? [`  ws:          ${cloud.wsUrl}`] : []),
      `  admin token: ${cloud.adminTokenFile}`,
      `  data dir:    ${cloud.dataDir}`,
      'Stop with Ctrl-C.',
    ];
    // mqtts/ws only when on, so the line of a plain cloud stays exactly what scripts already read.
    const result = {
      http: cloud.httpUrl,
      mqtt: cloud.mqttUrl,
      ...optionalUrls(cloud.mqttsUrl, cloud.wsUrl),
      adminTokenFile: cloud.adminTokenFile,
    };
    printResult(ctx, json, result, lines.join('\n'));
    await new Promise<void>((resolve) => {
      if (ctx.signal.aborted) resolve();
      else ctx.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    await cloud.close();
    return 0;
  },
});
