import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { TOPIC_ROOT } from '../../protocol/topics.js';
import { DEFAULT_CLOUD_LIMITS, type CloudLimits } from '../limits.js';

const run = promisify(execFile);

/**
 * Running the fleet against Mosquitto 2 instead of the embedded aedes (docs/protocol.md, "Using
 * Mosquitto instead of aedes"): a fleet that outgrows one process keeps the same interfaces.
 * The same policy as cloud-broker/broker/acl.ts, in Mosquitto's terms:
 * - `allow_anonymous false` + a password file: each device logs in as its id with its token;
 * - `use_username_as_clientid true`: the client id is forced to the username, so no device can
 *   take over another's session [MQTT-3.1.4-2];
 * - `pattern` ACL lines with %u: a device reads only its own desired/commands and writes only its
 *   own reported/status/telemetry/responses; the service user reads and writes the whole tree.
 * Mosquitto keeps retained messages in memory here (persistence false), like aedes: the fleet
 * republishes every desired state when its publisher reconnects.
 */
export function mosquittoAcl(serviceUser: string): string {
  const d = `${TOPIC_ROOT}/%u`;
  return [
    `user ${serviceUser}`,
    `topic readwrite ${TOPIC_ROOT}/#`,
    '',
    `pattern read ${d}/desired`,
    `pattern read ${d}/commands/#`,
    `pattern write ${d}/reported`,
    `pattern write ${d}/status`,
    `pattern write ${d}/telemetry`,
    `pattern write ${d}/responses/#`,
    '',
  ].join('\n');
}

export function mosquittoConf(o: {
  host: string;
  port: number;
  passwordFile: string;
  aclFile: string;
  user?: string;
  limits?: CloudLimits['broker'];
  maxConnections?: number;
}): string {
  return [
    // Started as root, mosquitto switches to this user; it must be able to read the 0600 files.
    ...(o.user ? [`user ${o.user}`] : []),
    'per_listener_settings false',
    'allow_anonymous false',
    `password_file ${o.passwordFile}`,
    `acl_file ${o.aclFile}`,
    'use_username_as_clientid true',
    ...boundsAndListener(o),
  ].join('\n');
}

interface ListenerOptions {
  host: string;
  port: number;
  limits?: CloudLimits['broker'];
  maxConnections?: number;
}

function boundsAndListener(o: ListenerOptions): string[] {
  const limits = o.limits ?? DEFAULT_CLOUD_LIMITS.broker;
  return [
    'persistence false',
    // The embedded broker's per-device bounds (cloud-broker/limits.ts) in Mosquitto's terms:
    // one payload cap for all topics (the largest, reports'), in-flight and queued messages per
    // client, connections per listener. Mosquitto 2 has no publish-rate limit; the in-flight cap
    // is what bounds a flooding client there.
    `message_size_limit ${limits.maxPayload.reported}`,
    `max_inflight_messages ${limits.maxInflight}`,
    'max_queued_messages 1000',
    `listener ${o.port} ${o.host}`,
    `max_connections ${o.maxConnections ?? DEFAULT_CLOUD_LIMITS.http.maxConnections}`,
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    '',
  ];
}

/**
 * Mosquitto 2 with its dynamic-security plugin (`--broker-admin dynsec`, docs/scale.md): no
 * password file, no ACL file; clients, roles and ACLs live in the plugin's JSON file, which the
 * plugin itself rewrites on every $CONTROL change. No `use_username_as_clientid`: each device's
 * dynsec client is pinned to its client id instead, and the cloud's replicas, which share the
 * service user, keep distinct client ids (forcing them equal would make them take each other's
 * session over).
 */
export function mosquittoDynsecConf(
  o: ListenerOptions & { plugin: string; dynsecFile: string; user?: string },
): string {
  return [
    ...(o.user ? [`user ${o.user}`] : []),
    'per_listener_settings false',
    'allow_anonymous false',
    `plugin ${o.plugin}`,
    `plugin_opt_config_file ${o.dynsecFile}`,
    ...boundsAndListener(o),
  ].join('\n');
}

/** Where Debian (and most builds) put the plugin; null when none of them has it. */
export async function findDynsecPlugin(): Promise<string | null> {
  const multiarch = process.arch === 'arm64' ? 'aarch64-linux-gnu' : 'x86_64-linux-gnu';
  for (const dir of [`/usr/lib/${multiarch}`, '/usr/lib', '/usr/local/lib', '/usr/lib/mosquitto']) {
    const f = path.join(dir, 'mosquitto_dynamic_security.so');
    if (
      await fs.stat(f).then(
        (s) => s.isFile(),
        () => false,
      )
    )
      return f;
  }
  return null;
}

/**
 * The plugin's first config file with one admin client (`mosquitto_ctrl dynsec init`), mode
 * 0600. The admin may only use $CONTROL (and read); the cloud grants itself the fleet's topics.
 */
export async function initDynsecFile(file: string, admin: string, password: string): Promise<void> {
  await run('mosquitto_ctrl', ['dynsec', 'init', file, admin, password]);
  await fs.chmod(file, 0o600);
}

export interface MosquittoFiles {
  conf: string;
  passwordFile: string;
  aclFile: string;
}

/** Writes mosquitto.conf, acl and an initial password file (mode 0600) into `dir`. */
export async function writeMosquittoFiles(
  dir: string,
  o: { host: string; port: number; service: { username: string; password: string }; user?: string },
): Promise<MosquittoFiles> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const files = {
    conf: path.join(dir, 'mosquitto.conf'),
    passwordFile: path.join(dir, 'passwd'),
    aclFile: path.join(dir, 'acl'),
  };
  await fs.writeFile(files.aclFile, mosquittoAcl(o.service.username), { mode: 0o600 });
  await fs.writeFile(files.passwordFile, '', { mode: 0o600 });
  await addMosquittoUser(files.passwordFile, o.service.username, o.service.password);
  await fs.writeFile(
    files.conf,
    mosquittoConf({
      host: o.host,
      port: o.port,
      passwordFile: files.passwordFile,
      aclFile: files.aclFile,
      user: o.user,
    }),
    { mode: 0o600 },
  );
  return files;
}

/** Adds or replaces a user (hashed by mosquitto_passwd); send SIGHUP to mosquitto to reload. */
export async function addMosquittoUser(passwordFile: string, username: string, password: string): Promise<void> {
  await run('mosquitto_passwd', ['-b', passwordFile, username, password]);
}

export async function removeMosquittoUser(passwordFile: string, username: string): Promise<void> {
  await run('mosquitto_passwd', ['-D', passwordFile, username]);
}
