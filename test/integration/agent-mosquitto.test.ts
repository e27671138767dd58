import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFleetServices, type FleetServices } from '../../cloud-broker/fleet/index.js';
import { silentLogger } from '../../protocol/log.js';
import { encodePng, rawImage } from '../fixtures/images.js';
import { activeAt, startTestFleet, waitFor, type TestAgent, type TestFleet } from '../helpers/fleet.js';
import { missingMosquitto, startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { skipForPackage } from '../helpers/requires.js';

/**
 * The agent, unchanged, against Debian's Mosquitto 2 instead of the embedded aedes: mosquitto runs
 * with a generated config, password file (mosquitto_passwd) and ACL on a free port; the cloud's
 * fleet services (signing, desired-state publisher, report ingestion) point at it; the real agent
 * daemon connects to it with its provisioned credentials, converges and reports back through it.
 */
const missing = missingMosquitto();

describe.skipIf(skipForPackage(missing))('the real agent against Mosquitto 2', () => {
  let f: TestFleet;
  let mosq: Mosquitto | undefined;
  let svc: FleetServices;
  let agent: TestAgent;

  beforeAll(async () => {
    f = await startTestFleet();
    mosq = await startMosquitto(f.root);
    // The fleet's broker side moves to mosquitto; catalog, blobs and HTTP stay the cloud's. Two
    // fleet services share this database, and only the fleet leader writes reports: the test
    // cloud's own (aedes) fleet gives the lease up so the mosquitto one takes it.
    f.cloud.fleet.leadership.stop();
    svc = await startFleetServices({
      db: f.cloud.db,
      dataDir: f.cloud.dataDir,
      log: silentLogger,
      httpUrl: f.cloud.httpUrl,
      host: '127.0.0.1',
      mqttPort: 0,
      externalBroker: mosq.externalBroker,
    });
  }, 30_000);
  afterAll(async () => {
    await agent?.stop();
    await svc?.close();
    await f?.close();
    await mosq?.stop();
  });

  it('converges on a deployment published through mosquitto and reports back through it', async () => {
    const v1 = await f.publish('acme/colors');
    const { agentConfig } = await svc.fleet.provision('mq-1');
    expect(agentConfig.cloud.mqtt).toBe(svc.mqttUrl);
    await mosq!.addUser('mq-1', agentConfig.credentials.token);
    // startAgent reads <root>/agent-<id>.json: the config provisioning wrote, untouched.
    await writeFile(join(f.root, 'agent-mq-1.json'), JSON.stringify(agentConfig, null, 2));
    agent = await f.startAgent('mq-1');
    await waitFor('agent connected to mosquitto', () => agent.daemon.session.connected, 15_000);
    await svc.fleet.deploy({ model: `acme/colors@${v1}` }, { kind: 'device', value: 'mq-1' });
    await waitFor('agent active on v1', () => activeAt(agent, 'acme/colors', v1));
    await waitFor(
      'report ingested through mosquitto',
      () => svc.fleet.rolloutStatus().find((d) => d.device === 'mq-1')?.converged,
    );
    const red = await encodePng(rawImage(32, 32, () => [250, 10, 10]));
    expect(JSON.stringify(await agent.client.predict('acme/colors', red))).toContain('"red"');

    // An update follows the same path.
    const v2 = await f.publish('acme/colors', 'classifier', { labels: ['rouge', 'vert', 'bleu'] });
    await svc.fleet.deploy({ model: `acme/colors@${v2}` }, { kind: 'device', value: 'mq-1' });
    await waitFor('agent active on v2', () => activeAt(agent, 'acme/colors', v2));
    expect(JSON.stringify(await agent.client.predict('acme/colors', red))).toContain('"rouge"');
    expect(agent.daemon.reconciler.report().desiredError).toBeUndefined();
  });
});
