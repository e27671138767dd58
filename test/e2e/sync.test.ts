import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { activeAt, startTestFleet, waitFor, type TestFleet } from '../helpers/fleet.js';
import { encodePng, rawImage } from '../fixtures/images.js';

/**
 * The heart of Outpost, end to end with real parts: the cloud (HTTP + SQLite + aedes + signed
 * desired state), models published through the CLI, real agent daemons with real models folders,
 * and predictions through the agent's Unix socket.
 */
describe('fleet sync end to end', () => {
  let f: TestFleet;
  beforeAll(async () => {
    f = await startTestFleet();
  });
  afterAll(async () => {
    await f?.close();
  });

  it('publish -> deploy -> installed, reported active in the cloud, and serving predictions', async () => {
    const v1 = await f.publish('acme/colors');
    await f.provision('cam-1', ['lobby']);
    const agent = await f.startAgent('cam-1');
    await f.fleet.deploy({ model: 'acme/colors' }, { kind: 'device', value: 'cam-1' });
    await waitFor('cam-1 active', () => activeAt(agent, 'acme/colors', v1));
    // The cloud's view is built from the device's reports only.
    await waitFor('rollout shows active', async () => {
      const d = (await f.fleet.rollout()).find((x) => x.device === 'cam-1');
      return d?.converged && d.models.some((m) => JSON.stringify(m).includes('"active"')) ? d : null;
    });
    const current = await readlink(join(agent.modelsDir, 'acme', 'colors', 'current'));
    expect(current).toContain(String(v1));
    const red = await encodePng(rawImage(32, 32, () => [250, 10, 10]));
    const answer = await agent.client.predict('acme/colors', red);
    expect(JSON.stringify(answer)).toContain('red');
  });

  it('a device offline during the deploy converges when it comes back', async () => {
    await f.provision('cam-2');
    const first = await f.startAgent('cam-2');
    await first.stop();
    const v2 = await f.publish('acme/colors', 'classifier', { labels: ['rouge', 'vert', 'bleu'] });
    await f.fleet.deploy({ model: `acme/colors@${v2}` }, { kind: 'device', value: 'cam-2' });
    const again = await f.startAgent('cam-2');
    await waitFor('cam-2 converged', () => activeAt(again, 'acme/colors', v2));
    const red = await encodePng(rawImage(32, 32, () => [250, 10, 10]));
    expect(JSON.stringify(await again.client.predict('acme/colors', red))).toContain('rouge');
  });

  it('a tag deployment reaches a device that joins the tag later, and rollback goes back', async () => {
    await f.fleet.deploy({ model: 'acme/colors@1' }, { kind: 'tag', value: 'dock' });
    await f.provision('cam-3');
    const agent = await f.startAgent('cam-3');
    await f.fleet.tagDevice('cam-3', ['dock'], []);
    await waitFor('cam-3 got the tag deployment', () => activeAt(agent, 'acme/colors', 1));
    await f.fleet.deploy({ model: 'acme/colors@2' }, { kind: 'tag', value: 'dock' });
    await waitFor('cam-3 on v2', () => activeAt(agent, 'acme/colors', 2));
    await f.fleet.rollback('acme/colors', { kind: 'tag', value: 'dock' });
    await waitFor('cam-3 rolled back to v1', () => activeAt(agent, 'acme/colors', 1));
    // v1's labels are back on disk and in the served model.
    expect(await readFile(join(agent.modelsDir, 'acme', 'colors', 'current', 'labels.txt'), 'utf8')).toContain('red');
  });
});
