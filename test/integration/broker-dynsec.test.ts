import { copyFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynsecAdmin, DYNSEC_RESPONSE_TOPIC } from '../../cloud-broker/broker/dynsec.js';
import type { AgentConfigDraft } from '../../cloud-broker/fleet/provision.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { silentLogger } from '../../protocol/log.js';
import { topics } from '../../protocol/topics.js';
import { runInProcess } from '../helpers/cli.js';
import { activeAt, startTestFleet, waitFor, type TestAgent, type TestFleet } from '../helpers/fleet.js';
import { missingDynsec, startDynsecMosquitto, type DynsecMosquitto } from '../helpers/mosquitto-dynsec.js';
import { skipForPackage } from '../helpers/requires.js';

/**
 * `outpost cloud start --broker mqtt://admin:pw@host:port` against Debian's Mosquitto 2 with its
 * dynamic-security plugin, started here from a `mosquitto_ctrl dynsec init` file: devices are
 * created and deleted through $CONTROL by the cloud itself, with no password file, no ACL file
 * and no SIGHUP (the mosquitto PID is the same from first to last provision and revocation).
 */
const missing = await missingDynsec();

/** Connects as a device with MQTT 5, so that a refused publish comes back as a PUBACK reason. */
function connectAs(
  mosq: DynsecMosquitto,
  cfg: AgentConfigDraft,
  o: { clientId?: string; password?: string } = {},
): Promise<MqttClient> {
  return mqtt.connectAsync(mosq.url, {
    username: cfg.credentials.username,
    password: o.password ?? cfg.credentials.token,
    clientId: o.clientId ?? cfg.deviceId,
    protocolVersion: 5,
    reconnectPeriod: 0,
    connectTimeout: 5000,
  });
}

/** The CONNACK reason a refused login gets (0x86 bad credentials, 0x87 not authorized), or 'connected'. */
async function loginResult(mosq: DynsecMosquitto, cfg: AgentConfigDraft, o = {}): Promise<number | 'connected'> {
  try {
    const c = await connectAs(mosq, cfg, o);
    await c.endAsync(true);
    return 'connected';
  } catch (err) {
    return (err as { code?: number }).code ?? -1;
  }
}

const config = async (f: TestFleet, id: string): Promise<AgentConfigDraft> =>
  JSON.parse(await readFile(path.join(f.root, `agent-${id}.json`), 'utf8')) as AgentConfigDraft;

describe.skipIf(skipForPackage(missing))('the fleet on Mosquitto 2 with dynamic security ($CONTROL)', () => {
  let mosqRoot: string;
  let mosq: DynsecMosquitto;
  let f: TestFleet;
  let pid: number | undefined;
  const agents: TestAgent[] = [];
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    mosqRoot = await mkdtemp(path.join(os.tmpdir(), 'outpost-dynsec-'));
    mosq = await startDynsecMosquitto(mosqRoot);
    pid = mosq.pid();
    f = await startTestFleet({
      externalBroker: { url: mosq.url, ...mosq.admin, admin: 'dynsec', adminTimeoutMs: 5000 },
    });
  }, 30_000);

  afterAll(async () => {
    for (const c of clients) await c.endAsync(true).catch(() => undefined);
    for (const a of agents) await a.stop().catch(() => undefined);
    await f?.close();
    await mosq?.stop();
    await rm(mosqRoot, { recursive: true, force: true });
  });

  it('provisions two devices through $CONTROL; both real agents converge on a deployment', async () => {
    expect(f.cloud.fleet.broker).toBeNull();
    await f.provision('ds-1', ['lab']);
    await f.provision('ds-2', ['lab']);
    for (const id of ['ds-1', 'ds-2']) agents.push(await f.startAgent(id));
    await waitFor('both agents connected to mosquitto', () => agents.every((a) => a.daemon.session.connected), 15_000);
    const v1 = await f.publish('acme/colors');
    await f.fleet.deploy({ model: `acme/colors@${v1}` }, { kind: 'tag', value: 'lab' });
    for (const a of agents) await waitFor('agent active on v1', () => activeAt(a, 'acme/colors', v1));
    await waitFor('both converged in the cloud', () => {
      const st = f.cloud.fleet.fleet.rolloutStatus();
      return ['ds-1', 'ds-2'].every((id) => st.find((d) => d.device === id)?.converged);
    });
    expect(mosq.pid()).toBe(pid);
  });

  it('a device reads only its own desired state and writes only its own reports', async () => {
    const one = await config(f, 'ds-1');
    const two = await config(f, 'ds-2');
    // The matrix runs beside the real agents, so it takes ds-1's client id... which is pinned:
    // a second login needs it, and it would take ds-1's agent session over. Use a ds-3 device.
    await f.provision('ds-3');
    const three = await config(f, 'ds-3');
    const c = await connectAs(mosq, three);
    clients.push(c);
    const filters = [
      topics.desired('ds-3'),
      topics.commands('ds-3'),
      topics.desired('ds-1'),
      'outpost/v1/devices/+/desired',
      topics.commands('ds-2'),
      '#',
    ];
    // mqtt.js rejects a SUBACK with any refusal but keeps the packet: read every reason code.
    const suback = await c.subscribeAsync(Object.fromEntries(filters.map((t) => [t, { qos: 1 as const }]))).then(
      () => null,
      (err: { packet?: { granted?: number[] } }) => err.packet?.granted,
    );
    // Own desired and commands granted (QoS 1); the rest refused (0x87 not authorized).
    expect(suback).toEqual([1, 1, 0x87, 0x87, 0x87, 0x87]);

    // A watcher with the admin's rights sees every report that reaches the broker.
    const watcher = await mqtt.connectAsync(mosq.url, { ...mosq.admin, protocolVersion: 5, reconnectPeriod: 0 });
    clients.push(watcher);
    const seen: string[] = [];
    watcher.on('message', (t, p) => seen.push(`${t} ${p.toString()}`));
    await watcher.subscribeAsync(['outpost/v1/devices/+/reported', 'outpost/v1/devices/+/desired']);
    const refused = async (topic: string): Promise<number | undefined> =>
      c.publishAsync(topic, 'forged', { qos: 1 }).then(
        () => undefined,
        (err: { code?: number }) => err.code,
      );
    expect(await refused(topics.reported('ds-1'))).toBe(0x87);
    expect(await refused(topics.desired('ds-3'))).toBe(0x87);
    expect(await refused(topics.status('ds-2'))).toBe(0x87);
    // Its own report goes through; the forged ones, sent before it on the same connection, never did.
    await c.publishAsync(topics.reported('ds-3'), 'own', { qos: 1 });
    await waitFor('own report reaches the broker', () => seen.includes(`${topics.reported('ds-3')} own`));
    expect(seen.filter((m) => m.endsWith(' forged'))).toEqual([]);

    // The client id is pinned to the device: ds-3's login cannot take ds-1's session, and
    // ds-1's token does not open ds-2's name.
    expect(await loginResult(mosq, three, { clientId: 'ds-1' })).not.toBe('connected');
    expect(
      await loginResult(mosq, { ...two, credentials: { ...two.credentials, token: one.credentials.token } }),
    ).not.toBe('connected');
    expect(await loginResult(mosq, three, { password: 'op_wrong' })).not.toBe('connected');
  });

  it('cloud start refuses --broker with an embedded-broker flag (exit 2), without echoing the password', async () => {
    const run = await runInProcess(
      [
        'cloud',
        'start',
        '--data-dir',
        path.join(mosqRoot, 'unused'),
        '--broker',
        'mqtt://a:hunter2@127.0.0.1:1',
        '--redis',
        'redis://127.0.0.1:1',
      ],
      { cwd: f.root, env: f.env },
    );
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('CLOUD_BROKER_FLAGS');
    expect(run.stdout + run.stderr).not.toContain('hunter2');
  });

  it('a user without the dynsec admin role gets DYNSEC_TIMEOUT, not a hang', async () => {
    const three = await config(f, 'ds-3');
    const c = await connectAs(mosq, three, { clientId: 'ds-3' });
    clients.push(c);
    const admin = new DynsecAdmin({
      channel: { publish: (t, p) => c.publishAsync(t, p, { qos: 0 }).then(() => undefined) },
      log: silentLogger,
      username: 'ds-3',
      timeoutMs: 500,
    });
    c.on('message', (t, p) => t === DYNSEC_RESPONSE_TOPIC && admin.handleResponse(p));
    const err = await admin.run({ command: 'listClients' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutpostError);
    expect((err as OutpostError).code).toBe('DYNSEC_TIMEOUT');
    expect(admin.inFlight).toBe(0);
  });

  it('device remove disconnects the device at once and refuses its reconnect, with no SIGHUP', async () => {
    const two = await config(f, 'ds-2');
    const agent = agents[1]!;
    expect(agent.daemon.session.connected).toBe(true);
    const run = await runInProcess(['device', 'remove', 'ds-2', '--json'], { cwd: f.root, env: f.env });
    expect(run.code).toBe(0);
    await waitFor('ds-2 agent disconnected by mosquitto', () => !agent.daemon.session.connected, 10_000);
    expect(await loginResult(mosq, two)).not.toBe('connected');
    // ds-1 was not touched.
    expect(agents[0]!.daemon.session.connected).toBe(true);
    expect(mosq.pid()).toBe(pid);
    // No password or ACL file anywhere: the broker's only state is the plugin's own JSON.
    expect((await readdir(mosq.dir)).sort()).toEqual(['dynamic-security.json', 'mosquitto.conf']);
    const conf = await readFile(path.join(mosq.dir, 'mosquitto.conf'), 'utf8');
    expect(conf).not.toMatch(/password_file|acl_file/);
    const stored = JSON.parse(await readFile(mosq.dynsecFile, 'utf8')) as { clients: { username: string }[] };
    expect(stored.clients.map((c) => c.username).sort()).toEqual(['ds-1', 'ds-3', 'outpost-admin']);
  });

  it('a broker restored from an old backup converges when the cloud restarts', async () => {
    // The backup holds ds-1 and ds-3; after it, ds-4 is provisioned and ds-3 removed.
    const backup = path.join(mosqRoot, 'dynsec.backup.json');
    await copyFile(mosq.dynsecFile, backup);
    await f.provision('ds-4');
    await runInProcess(['device', 'remove', 'ds-3'], { cwd: f.root, env: f.env });
    const three = await config(f, 'ds-3');
    const four = await config(f, 'ds-4');
    const one = await config(f, 'ds-1');
    expect(await loginResult(mosq, four)).toBe('connected');

    for (const a of agents) await a.stop();
    agents.length = 0;
    await f.cloud.close();
    await mosq.stop();
    await copyFile(backup, mosq.dynsecFile);
    await mosq.start();
    // Restored: the removed ds-3 can log in again and the new ds-4 cannot, until the cloud runs.
    expect(await loginResult(mosq, three)).toBe('connected');
    expect(await loginResult(mosq, four)).not.toBe('connected');

    // The cloud restarts through the CLI, its service password in the URL.
    const abort = new AbortController();
    const url = new URL(mosq.url);
    url.username = mosq.admin.username;
    url.password = mosq.admin.password;
    const cloud = runInProcess(
      ['cloud', 'start', '--data-dir', f.cloud.dataDir, '--http-port', '0', '--broker', url.href, '--json'],
      { cwd: f.root, env: { ...f.env, OUTPOST_LOG_LEVEL: 'info' }, signal: abort.signal },
    );
    try {
      await waitFor(
        'ds-4 created again by the reconciliation',
        async () => (await loginResult(mosq, four)) === 'connected',
        20_000,
      );
      await waitFor('ds-3 deleted again', async () => (await loginResult(mosq, three)) !== 'connected');
      expect(await loginResult(mosq, one)).toBe('connected');
    } finally {
      abort.abort();
    }
    const done = await cloud;
    expect(done.code).toBe(0);
    expect(done.stdout + done.stderr).not.toContain(mosq.admin.password);
    expect(done.stdout).toContain(`"mqtt":"${mosq.url}"`);
  });
});
