import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../agent/client/index.js';
import { encodePng, rawImage } from '../fixtures/images.js';
import {
  agentEnv,
  brokerSwitch,
  notifyReceiver,
  spawnAgent,
  type AgentProcess,
  type BrokerSwitch,
  type NotifyReceiver,
} from '../helpers/daemon-process.js';
import { activeAt, startTestFleet, waitFor, type TestFleet } from '../helpers/fleet.js';

/**
 * A device that boots with its broker down: the real agent process serves what it has installed
 * over its socket, keeps trying the broker in the background, and once the broker is reachable
 * it connects, reports online and converges to what was deployed meanwhile.
 */
let f: TestFleet;
let link: BrokerSwitch;
let agent: AgentProcess;
let rx: NotifyReceiver;
let socket: string;
beforeAll(async () => {
  f = await startTestFleet();
  await f.publish('acme/colors');
  await f.provision('cam-o');
  // Install v1 with an in-process agent, then stop it: the models folder is what a reboot finds.
  const first = await f.startAgent('cam-o');
  await f.fleet.deploy({ model: 'acme/colors' }, { kind: 'device', value: 'cam-o' });
  await waitFor('v1 installed', () => activeAt(first, 'acme/colors', 1));
  await first.stop();
  link = await brokerSwitch();
});
afterAll(async () => {
  await agent?.kill();
  rx?.close();
  await link?.close();
  await f?.close();
});

interface Status {
  broker: { connected: boolean };
}

describe('offline', () => {
  it('serves installed models with no broker, keeps retrying, then connects and converges', async () => {
    rx = notifyReceiver(f.root);
    socket = join(f.root, 'cam-o.sock');
    agent = spawnAgent({
      config: join(f.root, 'agent-cam-o.json'),
      args: ['--models-dir', join(f.root, 'models-cam-o'), '--socket', socket],
      env: agentEnv({
        NOTIFY_SOCKET: rx.path,
        OUTPOST_MQTT_URL: link.url,
        OUTPOST_MQTT_RECONNECT_MIN_MS: '200',
        OUTPOST_MQTT_RECONNECT_MAX_MS: '1000',
      }),
    });
    await rx.until((m) => m.startsWith('READY=1'));
    const client = new AgentClient({ socket });
    const red = await encodePng(rawImage(32, 32, () => [250, 10, 10]));
    expect(JSON.stringify(await client.predict('acme/colors', red))).toContain('red');
    // It keeps trying (with backoff) while the broker is down, and says so.
    await waitFor('three refused attempts', () => link.refused >= 3, 20_000);
    expect(((await client.status()) as unknown as Status).broker.connected).toBe(false);
    await rx.until((m) => m.startsWith('STATUS=broker unreachable, retrying'));
    expect((await f.fleet.showDevice('cam-o')).device.status).toBe('offline');
    // Still serving after all those failures.
    expect(JSON.stringify(await client.predict('acme/colors', red))).toContain('red');

    // Meanwhile the operator deploys v2; then the broker becomes reachable.
    const v2 = await f.publish('acme/colors', 'classifier', { labels: ['rouge', 'vert', 'bleu'] });
    await f.fleet.deploy({ model: `acme/colors@${v2}` }, { kind: 'device', value: 'cam-o' });
    const broker = new URL(f.cloud.mqttUrl!);
    link.open({ host: broker.hostname, port: Number(broker.port) });
    await waitFor('connected', async () => ((await client.status()) as unknown as Status).broker.connected, 20_000);
    await rx.until((m) => m.startsWith('STATUS=connected to'));
    await waitFor(
      'the cloud sees it online',
      async () => (await f.fleet.showDevice('cam-o')).device.status === 'online',
    );
    await waitFor(
      'v2 active',
      async () => (await client.models()).some((m) => m.id === 'acme/colors' && m.activeVersion === v2),
      30_000,
    );
    expect(JSON.stringify(await client.predict('acme/colors', red))).toContain('rouge');

    agent.signal('SIGTERM');
    expect(await agent.exited).toEqual({ code: 0, signal: null });
    // The goodbye: `offline` published before the disconnect, not left to the Last Will.
    await waitFor(
      'the cloud sees it offline',
      async () => (await f.fleet.showDevice('cam-o')).device.status === 'offline',
    );
  });
});
