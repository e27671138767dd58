import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { TLSSocket } from 'node:tls';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon } from '../../agent/daemon/index.js';
import { AgentClient } from '../../agent/client/index.js';
import { readTlsFiles } from '../../cloud-broker/tls.js';
import { parseAgentConfig } from '../../protocol/agent-config.js';
import { verifyDesired } from '../../protocol/desired-state.js';
import { createLogger } from '../../protocol/log.js';
import { topics } from '../../protocol/topics.js';
import { encodePng, rawImage } from '../fixtures/images.js';
import { activeAt, startTestFleet, waitFor, type TestFleet } from '../helpers/fleet.js';
import { skipForPackage } from '../helpers/requires.js';
import { makeTestPki, missingOpenssl, type TestPki } from './tls-certs.js';

/**
 * MQTT over TLS and WebSocket with real parts: certificates made by openssl (a private CA and a
 * server certificate for 127.0.0.1), the real cloud with its TLS and WebSocket listeners, real
 * agent daemons and a plain mqtt.js client.
 */
describe.skipIf(skipForPackage(missingOpenssl()))('MQTT over TLS and WebSocket', () => {
  let pkiDir: string;
  let pki: TestPki;
  let f: TestFleet;
  /** Whether each MQTT client id connected over a TLS socket, as the broker saw it. */
  const overTls = new Map<string, boolean>();

  beforeAll(async () => {
    pkiDir = await mkdtemp(join(tmpdir(), 'outpost-pki-'));
    pki = await makeTestPki(pkiDir);
    const tls = await readTlsFiles({ cert: pki.serverCert, key: pki.serverKey, ca: pki.caCert });
    f = await startTestFleet({ tls, wsPort: 0 });
    // The broker's packet guard wraps each connection; `transport` is the socket under it.
    f.cloud.fleet.broker!.broker.on('clientReady', (c) =>
      overTls.set(c.id, (c.conn as unknown as { transport?: unknown }).transport instanceof TLSSocket),
    );
  });
  afterAll(async () => {
    await f?.close();
    if (pkiDir) await rm(pkiDir, { recursive: true, force: true });
  });

  it('provisions mqtts:// and the CA; the agent converges over TLS and serves a prediction', async () => {
    expect(f.cloud.mqttsUrl).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/);
    const v1 = await f.publish('acme/colors');
    const file = await f.provision('cam-tls');
    const config = parseAgentConfig(JSON.parse(await readFile(file, 'utf8')), file);
    expect(config.cloud.mqtt).toBe(f.cloud.mqttsUrl);
    expect(config.cloud.ca).toBe(await pki.read(pki.caCert));

    const agent = await f.startAgent('cam-tls');
    await f.fleet.deploy({ model: 'acme/colors' }, { kind: 'device', value: 'cam-tls' });
    await waitFor('cam-tls active', () => activeAt(agent, 'acme/colors', v1));
    // The cloud's view comes from the device's reports, which travelled over the TLS connection.
    await waitFor(
      'rollout shows cam-tls converged',
      async () => (await f.fleet.rollout()).find((d) => d.device === 'cam-tls')?.converged,
    );
    expect(overTls.get('cam-tls')).toBe(true);
    const red = await encodePng(rawImage(32, 32, () => [250, 10, 10]));
    expect(JSON.stringify(await agent.client.predict('acme/colors', red))).toContain('red');
  });

  it('an agent without the CA is refused by TLS verification, says why, keeps retrying and keeps serving', async () => {
    const file = await f.provision('cam-noca');
    const raw = JSON.parse(await readFile(file, 'utf8')) as { cloud: Record<string, unknown> };
    delete raw.cloud.ca;
    await writeFile(file, JSON.stringify(raw));
    const lines: Record<string, any>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, any>);
        done();
      },
    });
    const socket = join(f.root, 'cam-noca.sock');
    const daemon = await startDaemon({
      configPath: file,
      overrides: {
        modelsDir: join(f.root, 'models-noca'),
        socket,
        'telemetry.enabled': false,
        'mqtt.reconnectMinMs': 100,
        'mqtt.reconnectMaxMs': 200,
      },
      env: {},
      log: createLogger({ level: 'info', destination: sink }),
    });
    try {
      const refusals = () => lines.filter((l) => l.tlsRefused === true);
      // Two refusals prove the retry: the session came back after the first one.
      await waitFor('two TLS refusals', () => refusals().length >= 2);
      const first = refusals()[0];
      expect(first.err.code).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
      expect(first.msg).toMatch(/not trusted/);
      expect(first.msg).toMatch(/cloud\.ca/);
      expect(daemon.session.connected).toBe(false);
      expect(overTls.has('cam-noca')).toBe(false);
      // Not crashed: the local API answers and says the broker is not connected.
      const client = new AgentClient({ socket });
      expect((await client.health()).live).toBe(true);
      expect(await client.status()).toMatchObject({ broker: { url: f.cloud.mqttsUrl, connected: false } });
    } finally {
      await daemon.stop({ graceMs: 1000 });
    }
  });

  it('a plain mqtt.js client connects over WebSocket with device credentials and gets its retained desired state', async () => {
    expect(f.cloud.wsUrl).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/mqtt$/);
    const file = await f.provision('cam-ws');
    const config = parseAgentConfig(JSON.parse(await readFile(file, 'utf8')), file);
    await f.fleet.deploy({ model: 'acme/colors@1' }, { kind: 'device', value: 'cam-ws' });
    const client = await mqtt.connectAsync(f.cloud.wsUrl!, {
      clientId: 'cam-ws',
      username: config.credentials.username,
      password: config.credentials.token,
      reconnectPeriod: 0,
    });
    try {
      const message = new Promise<{ payload: Buffer; retain: boolean }>((resolve) =>
        client.once('message', (_t, payload, packet) => resolve({ payload, retain: packet.retain })),
      );
      await client.subscribeAsync(topics.desired('cam-ws'), { qos: 1 });
      const { payload, retain } = await message;
      expect(retain).toBe(true);
      // Signed by the cloud's key that provisioning handed out, for this device, with the model.
      const desired = verifyDesired(payload, {
        deviceId: 'cam-ws',
        trustedKeys: config.trustedKeys,
        lastRevision: null,
        now: new Date(),
      });
      expect(desired.models.map((m) => `${m.id}@${m.version}`)).toEqual(['acme/colors@1']);
      expect(overTls.get('cam-ws')).toBe(false);
    } finally {
      await client.endAsync();
    }
  });

  it('refuses WebSocket clients with wrong credentials', async () => {
    const err = await mqtt
      .connectAsync(f.cloud.wsUrl!, {
        clientId: 'cam-ws',
        username: 'cam-ws',
        password: 'not-the-token',
        reconnectPeriod: 0,
      })
      .then(
        (c) => {
          void c.endAsync();
          return null;
        },
        (e: Error & { code?: number }) => e,
      );
    expect(err?.code).toBe(4);
  });
});
