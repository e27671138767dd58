import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../agent/client/index.js';
import type { DesiredFile } from '../../protocol/desired-state.js';
import { encodePng, rawImage } from '../fixtures/images.js';
import { spawnAgent, writeAgentConfig, type AgentProcess } from '../helpers/agent-process.js';
import { startTestFleet, waitFor, type TestFleet } from '../helpers/fleet.js';
import { checkModelFolder, filesInDesired, publishPadded } from './agent-fixture.js';

/**
 * kill -9 of the real agent process (a child running `agent run`) while it installs a new
 * version that the cloud just deployed, KILLS times at random moments. After every kill the
 * models folder must hold the old or the new complete version (every file hashed against the
 * signed list), and the restarted agent must converge: the cloud's rollout shows it active on
 * the new version. Models are small (256 KiB) so that one round is about one agent start.
 */
const KILLS = 50;
const DEVICE = 'k9';
const MODEL = 'acme/k9';
const SIZE = 256 * 1024;

describe('kill -9 of the agent process during installs', () => {
  let f: TestFleet;
  let config: string;
  let modelsDir: string;
  let socket: string;
  let agent: AgentProcess | null = null;
  const signed = new Map<number, DesiredFile[]>();

  beforeAll(async () => {
    f = await startTestFleet();
    const provisioned = await f.provision(DEVICE);
    modelsDir = join(f.root, 'models-k9');
    socket = join(f.root, 'k9.sock');
    config = await writeAgentConfig(provisioned, join(f.root, 'k9-agent.json'), { modelsDir, socket });
  }, 30_000);
  afterAll(async () => {
    await agent?.kill();
    await f?.close();
  });

  const converged = (version: number): boolean => {
    const d = f.cloud.fleet.fleet.rolloutStatus().find((x) => x.device === DEVICE);
    return !!d?.converged && d.models.some((m) => m.id === MODEL && m.active === version && m.state === 'active');
  };

  async function deploy(version: number): Promise<void> {
    await f.cloud.fleet.fleet.deploy({ model: `${MODEL}@${version}` }, { kind: 'device', value: DEVICE });
    filesInDesired(f, DEVICE, signed);
  }

  async function startAndConverge(version: number): Promise<AgentProcess> {
    const a = spawnAgent(config);
    try {
      await waitFor(`agent converged on ${version}`, () => converged(version), 30_000);
    } catch (err) {
      await a.kill();
      throw new Error(`${(err as Error).message}\nagent output:\n${a.output().slice(-4000)}`);
    }
    return a;
  }

  it(`leaves the old or the new complete version after ${KILLS} kills, and converges after each restart`, async () => {
    let version = await publishPadded(f, MODEL, SIZE, 1);
    await deploy(version);
    agent = await startAndConverge(version);
    // How long a deploy takes to land in a running agent: kills are drawn from [0, 1.3 x that].
    const next0 = await publishPadded(f, MODEL, SIZE, 2);
    let t0 = performance.now();
    await deploy(next0);
    await waitFor('first update', () => converged(next0));
    let span = performance.now() - t0;
    version = next0;

    let sawOld = 0;
    let sawNew = 0;
    for (let round = 0; round < KILLS; round++) {
      const next = await publishPadded(f, MODEL, SIZE, 3 + round);
      t0 = performance.now();
      await deploy(next);
      const delay = Math.random() * span * 1.3;
      await new Promise((r) => setTimeout(r, delay));
      const finished = converged(next);
      await agent.kill('SIGKILL');
      if (finished) span = Math.max(10, (performance.now() - t0) * 0.8);

      // Crash consistency, before anything repairs the folder.
      const current = await checkModelFolder(modelsDir, MODEL, [version, next], signed);
      if (current === version) sawOld++;
      else sawNew++;

      // Convergence: the restarted agent recovers and installs what the kill interrupted.
      agent = await startAndConverge(next);
      await checkModelFolder(modelsDir, MODEL, [next], signed);
      version = next;
    }
    // Recovery left nothing behind: no journal, nothing staged.
    expect(existsSync(join(modelsDir, '.outpost/journal.json'))).toBe(false);
    expect(await readdir(join(modelsDir, '.outpost/staging'))).toEqual([]);
    // The survivor serves the last version through its socket.
    const red = await encodePng(rawImage(32, 32, () => [250, 10, 10]));
    const client = new AgentClient({ socket });
    await waitFor('last version serving', async () =>
      JSON.stringify(await client.models()).includes(`"activeVersion":${version}`),
    );
    expect(JSON.stringify(await client.predict(MODEL, red))).toContain('"red"');
    // Kills must have landed before the flip too, or the test proved nothing about staging.
    expect(sawOld).toBeGreaterThan(0);
    console.log(`agent kill -9: ${KILLS} kills; after the kill ${sawOld} old current, ${sawNew} new current`);
  }, 170_000);
});
