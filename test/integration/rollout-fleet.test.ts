import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../agent/client/index.js';
import type { AuditEntry, Plan, RolloutView } from '../../cloud-broker/fleet/rollout-types.js';
import { writeModelFolder } from '../fixtures/model-folder.js';
import { darkFailingClassifierOnnx } from '../fixtures/onnx/dark-failing.js';
import { encodePng, rawImage } from '../fixtures/images.js';
import { spawnAgent, writeAgentConfig, type AgentProcess } from '../helpers/agent-process.js';
import { cleanEnv, runInProcess } from '../helpers/cli.js';
import { waitFor } from '../helpers/fleet.js';
import { agentWithoutAddons, cloudProcess, type CloudProcess } from '../helpers/rollout-fleet.js';
import { writeNet } from './addon-model-dirs.js';
import { buildNet } from '../fixtures/caffe/nets.js';
import { testDatabase } from '../helpers/test-db.js';

/**
 * Staged rollouts end to end: the cloud as a real child process (`outpost cloud start`, SIGKILLed
 * and restarted in one test), eight real agent processes (`outpost agent run`, onnxruntime,
 * smoke tests, telemetry), models generated here and published and deployed through the real
 * CLI. One of the eight is a copy of the agent installed without its native addons, so the fleet
 * is mixed: it lacks the OpenCV backend. Waits are on events (states the cloud reports), never on
 * the clock; soaks are 1-2 s.
 */
const N = 8;
const IDS = Array.from({ length: N }, (_, i) => `r-${i + 1}`);
const NO_ADDONS = 'r-8';
const MODEL = 'acme/cls';

let root: string;
let cloud: CloudProcess;
const agents = new Map<string, { proc: AgentProcess; client: AgentClient }>();
let folders = 0;

const env = () => cleanEnv({ OUTPOST_CLOUD_URL: cloud.http, OUTPOST_TOKEN: cloud.token, HOME: root });
const cli = (...argv: string[]) => runInProcess(argv, { cwd: root, env: env() });

async function publish(write: (dir: string) => Promise<void>): Promise<number> {
  const dir = join(root, `model-${++folders}`);
  await write(dir);
  const run = await runInProcess(['model', 'publish', '--json', '--force'], { cwd: dir, env: env() });
  if (run.code !== 0) throw new Error(`publish failed: ${run.stdout} ${run.stderr}`);
  return run.json<{ version: number }>().version;
}

/** A classifier version whose labels differ, so each publish is a new version with a reused model.onnx. */
const good = (tag: string) => (dir: string) =>
  writeModelFolder(dir, 'classifier', { id: MODEL }).then(() =>
    writeFile(join(dir, 'labels.txt'), `red-${tag}\ngreen-${tag}\nblue-${tag}\n`),
  );

async function revisions(): Promise<Record<string, number>> {
  return Object.fromEntries((await cloud.fleet.listDevices()).map((d) => [d.id, d.revision]));
}

async function rolloutOf(id: number): Promise<RolloutView> {
  return cloud.fleet.rolloutView(id);
}

async function until(id: number, what: string, pred: (r: RolloutView) => boolean, ms = 90_000): Promise<RolloutView> {
  return waitFor(
    `rollout ${id} ${what}`,
    async () => {
      const r = await rolloutOf(id);
      return pred(r) ? r : null;
    },
    ms,
  );
}

const ended = (r: RolloutView) => r.state === 'done' || r.state === 'aborted';

async function deploy(version: number, ...flags: string[]): Promise<number> {
  const run = await cli('deploy', `${MODEL}@${version}`, '--tag', 'fleet', ...flags, '--json');
  expect(run.code, run.stdout + run.stderr).toBe(0);
  const id = run.json<{ rollout: { id: number } }>().rollout.id;
  expect(id).toBeGreaterThan(0);
  return id;
}

/** Every device reports MODEL active at `version`. */
async function allActive(ids: string[], version: number): Promise<void> {
  await waitFor(
    `${ids.join(',')} active on ${MODEL}@${version}`,
    async () => {
      const rows = await cloud.fleet.rollout();
      return ids.every((id) =>
        rows
          .find((d) => d.device === id)
          ?.models.some((m) => m.id === MODEL && m.active === version && m.state === 'active'),
      );
    },
    90_000,
  );
}

async function audit(id: number): Promise<AuditEntry[]> {
  return cloud.fleet.audit({ rollout: id });
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'outpost-rf-'));
  cloud = await cloudProcess(join(root, 'cloud'), root, { database: await testDatabase() });
  const bare = await agentWithoutAddons(join(root, 'bare-agent'));
  for (const id of IDS) {
    const { agentConfig } = await cloud.fleet.provision(id, ['fleet']);
    const provisioned = join(root, `${id}.provisioned.json`);
    await writeFile(provisioned, JSON.stringify(agentConfig));
    const socket = join(root, `${id}.sock`);
    const config = await writeAgentConfig(provisioned, join(root, `${id}.json`), {
      modelsDir: join(root, `models-${id}`),
      socket,
    });
    const proc = spawnAgent(config, id === NO_ADDONS ? { bin: bare } : {});
    agents.set(id, { proc, client: new AgentClient({ socket }) });
  }
  // The base every scenario starts from: v1 on every device, deployed all at once (no flags).
  const v1 = await publish(good('v1'));
  const run = await cli('deploy', `${MODEL}@${v1}`, '--tag', 'fleet', '--json');
  expect(run.code, run.stderr).toBe(0);
  expect(run.json()).not.toHaveProperty('rollout');
  await allActive(IDS, v1);
}, 240_000);

afterAll(async () => {
  await Promise.all([...agents.values()].map((a) => a.proc.kill('SIGKILL')));
  await cloud?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

describe('staged rollouts on a real cloud with 8 agent processes', () => {
  it('plans a mixed fleet: installs, bytes from what devices hold, the device without the backend, batches; nothing moves', async () => {
    const before = await revisions();
    const caffe = await publish(async (dir) => {
      const src = await writeNet(root, buildNet('classifier'), 'caffe');
      await writeModelFolder(dir, 'classifier', { id: 'acme/caffe-cls', params: { ...src.params } });
      await rm(join(dir, 'model.onnx'));
      await cp(src.dir, dir, { recursive: true });
    });
    const run = await cli(
      'plan',
      `acme/caffe-cls@${caffe}`,
      '--tag',
      'fleet',
      '--canary',
      '1',
      '--batch-size',
      '2',
      '--json',
    );
    expect(run.code, run.stderr).toBe(0);
    const plan = run.json<{ plan: Plan }>().plan;
    expect(plan.batches.map((b) => b.size)).toEqual([1, 2, 2, 2, 1]);
    expect(plan.devices).toHaveLength(N);
    for (const d of plan.devices) {
      expect(d.changes).toContainEqual({ action: 'install', model: 'acme/caffe-cls', version: caffe, from: null });
      expect(d.changes).toContainEqual({ action: 'keep', model: MODEL, version: 1, from: 1 });
      expect(d.downloadBytes).toBeGreaterThan(0);
      if (d.device === NO_ADDONS)
        expect(d.incompatible).toMatchObject([{ model: 'acme/caffe-cls', code: 'SYNC_NO_BACKEND' }]);
      else expect(d.incompatible).toEqual([]);
    }
    expect(plan.totals.incompatible).toBe(1);
    const human = await cli('plan', `acme/caffe-cls@${caffe}`, '--tag', 'fleet');
    expect(human.stdout).toMatch(
      new RegExp(`${NO_ADDONS}\\s+0\\s+install acme/caffe-cls@${caffe}.*no: SYNC_NO_BACKEND`),
    );

    // A new version of a model the devices hold: only the files they lack count.
    const v = await publish(good('plan'));
    const dry = await cli('deploy', `${MODEL}@${v}`, '--tag', 'fleet', '--batch-size', '4', '--dry-run', '--json');
    expect(dry.code, dry.stderr).toBe(0);
    const p2 = dry.json<{ plan: Plan }>().plan;
    const files = async (ver: number) =>
      (await fetch(`${cloud.http}/v1/models/${MODEL}/versions/${ver}`, {
        headers: { authorization: `Bearer ${cloud.token}` },
      }).then((r) => r.json())) as { files: { sha256: string; size: number }[] };
    const [have, want] = [await files(1), await files(v)];
    const missing = want.files.filter((f) => !have.files.some((h) => h.sha256 === f.sha256));
    expect(missing.length).toBeLessThan(want.files.length);
    for (const d of p2.devices) {
      expect(d.changes).toEqual([{ action: 'install', model: MODEL, version: v, from: 1 }]);
      expect(d.downloadBytes).toBe(missing.reduce((a, f) => a + f.size, 0));
    }
    expect(p2.batches.map((b) => b.size)).toEqual([4, 4]);
    expect(await revisions()).toEqual(before);
    expect(await cloud.fleet.rollouts()).toEqual([]);
  }, 120_000);

  it('a canary of 1 that fails its smoke test aborts the rollout; no other device moves; the canary serves v1', async () => {
    const bad = await publish((dir) =>
      writeModelFolder(dir, 'classifier', { id: MODEL, params: { size: [16, 16] } }).then(() => undefined),
    );
    const before = await revisions();
    const id = await deploy(bad, '--canary', '1', '--batch-size', '2', '--soak', '1s', '--device-timeout', '60s');
    const r = await until(id, 'ended', ended);
    expect(r.state).toBe('aborted');
    expect(r.reason?.code).toBe('ROLLOUT_FAILURE_THRESHOLD');
    expect(r.rolledBack).toBe(true);
    const canary = r.batches[0].devices[0];
    expect(r.batches[0].canary).toBe(true);
    expect(canary.error?.code).toBe('RUNTIME_SMOKE_TEST_FAILED');
    expect(canary.state).toBe('rolled-back');
    for (const b of r.batches.slice(1)) for (const d of b.devices) expect(d.state).toBe('cancelled');
    const after = await revisions();
    for (const dev of IDS) {
      if (dev === canary.device) expect(after[dev]).toBeGreaterThan(before[dev]);
      else expect(after[dev], dev).toBe(before[dev]);
    }
    const answer = await agents
      .get(canary.device)!
      .client.predict(MODEL, await encodePng(rawImage(32, 32, () => [200, 20, 20])));
    expect(answer.version).toBe(1);
    const human = await cli('rollout', 'status', String(id));
    expect(human.stdout).toContain(`rollout ${id}: aborted (ROLLOUT_FAILURE_THRESHOLD`);
    expect(human.stdout).toContain('RUNTIME_SMOKE_TEST_FAILED');
  }, 120_000);

  it('a model that activates but fails on dark frames during the soak: abort and rollback', async () => {
    const flaky = await publish(async (dir) => {
      await writeModelFolder(dir, 'classifier', { id: MODEL });
      await writeFile(join(dir, 'model.onnx'), darkFailingClassifierOnnx([32, 32]));
    });
    const before = await revisions();
    const id = await deploy(flaky, '--canary', '1', '--batch-size', '3', '--soak', '2s', '--device-timeout', '60s');
    // Real traffic: dark frames on every device, through its socket, while the rollout runs.
    const dark = await encodePng(rawImage(32, 32, () => [0, 0, 0]));
    let stop = false;
    let failedCalls = 0;
    const traffic = (async () => {
      while (!stop) {
        await Promise.all(
          [...agents.values()].map((a) =>
            a.client.predict(MODEL, dark).catch(() => {
              failedCalls++;
            }),
          ),
        );
        await new Promise((res) => setTimeout(res, 50));
      }
    })();
    const r = await until(id, 'ended', ended).finally(async () => {
      stop = true;
      await traffic;
    });
    expect(failedCalls).toBeGreaterThan(0);
    expect(r.state).toBe('aborted');
    expect(r.rolledBack).toBe(true);
    const failed = r.batches.flatMap((b) => b.devices).filter((d) => d.error);
    expect(failed.map((d) => d.error!.code)).toContain('ROLLOUT_INFERENCE_ERRORS');
    const sent = r.batches.flatMap((b) => b.devices).filter((d) => d.sentAt !== null);
    expect(sent.every((d) => d.state === 'rolled-back')).toBe(true);
    // The devices that took it go back to v1; the others never moved.
    await allActive(
      sent.map((d) => d.device),
      1,
    );
    const after = await revisions();
    for (const dev of IDS) if (!sent.some((d) => d.device === dev)) expect(after[dev], dev).toBe(before[dev]);
    const actions = (await audit(id)).map((e) => e.action);
    expect(actions).toEqual(expect.arrayContaining(['rollout.device-failed', 'rollout.abort', 'rollout.rollback']));
  }, 150_000);

  it('a good model in batches of 2 converges batch by batch, as the audit trail shows', async () => {
    const v = await publish(good('batches'));
    const before = await revisions();
    const id = await deploy(
      v,
      '--batch-size',
      '2',
      '--max-per-minute',
      '600',
      '--soak',
      '1s',
      '--device-timeout',
      '60s',
    );
    const r = await until(id, 'ended', ended);
    expect(r.state, JSON.stringify(r.reason)).toBe('done');
    expect(r.batches.map((b) => b.devices.length)).toEqual([2, 2, 2, 2]);
    expect(r.counts).toMatchObject({ total: N, succeeded: N, failed: 0 });
    await allActive(IDS, v);
    const entries = (await audit(id)).filter((e) => e.action.startsWith('rollout.batch'));
    expect(entries.map((e) => `${e.action}:${e.details.batch}`)).toEqual(
      [0, 1, 2, 3].flatMap((b) => [`rollout.batch-sent:${b}`, `rollout.batch-done:${b}`]),
    );
    // Batch k+1 went out only after batch k was done, and each device's revision moved once.
    for (let i = 1; i < entries.length; i++) expect(entries[i].at >= entries[i - 1].at).toBe(true);
    const after = await revisions();
    for (const dev of IDS) expect(after[dev], dev).toBe(before[dev] + 1);
    const human = await cli('audit', '--rollout', String(id));
    expect(human.stdout).toContain('system/scheduler');
    expect(human.stdout).toContain('rollout.done');
  }, 150_000);

  it('pause holds the next batch; resume finishes the rollout', async () => {
    const v = await publish(good('pause'));
    const id = await deploy(v, '--batch-size', '4', '--soak', '1s', '--device-timeout', '60s');
    const paused = await cli('rollout', 'pause', String(id), '--json');
    expect(paused.code, paused.stdout).toBe(0);
    expect(paused.json<{ rollout: RolloutView }>().rollout.state).toBe('paused');
    // The first batch may have gone out before the pause; it finishes, the second is not sent.
    const held = await until(
      id,
      'first batch finished while paused',
      (r) => r.batches[0].state === 'done' || r.batches[0].state === 'pending',
      60_000,
    );
    expect(held.state).toBe('paused');
    expect(held.batches[1].devices.every((d) => d.state === 'pending')).toBe(true);
    expect((await cli('rollout', 'pause', String(id))).code).toBe(6);
    const list = await cli('rollout', 'list', '--state', 'paused', '--json');
    expect(list.json<{ rollouts: { id: number }[] }>().rollouts.map((x) => x.id)).toContain(id);
    const resumed = await cli('rollout', 'resume', String(id), '--json');
    expect(resumed.code, resumed.stdout).toBe(0);
    const r = await until(id, 'ended', ended);
    expect(r.state).toBe('done');
    await allActive(IDS, v);
    const actions = (await audit(id)).map((e) => `${e.actor.kind}/${e.actor.name} ${e.action}`);
    expect(actions).toEqual(expect.arrayContaining(['admin/admin rollout.pause', 'admin/admin rollout.resume']));
  }, 150_000);

  it('the cloud SIGKILLed mid-rollout resumes after a restart, and sends no batch twice', async () => {
    const v = await publish(good('kill'));
    const before = await revisions();
    const id = await deploy(v, '--batch-size', '2', '--soak', '2s', '--device-timeout', '60s');
    await until(id, 'second batch sent', (r) => r.batches[1].state === 'in-progress' || r.batches[1].state === 'done');
    await cloud.kill();
    await cloud.start();
    const r = await until(id, 'ended after the restart', ended);
    expect(r.state, JSON.stringify({ reason: r.reason, counts: r.counts })).toBe('done');
    await allActive(IDS, v);
    const sent = (await audit(id)).filter((e) => e.action === 'rollout.batch-sent');
    expect(sent.map((e) => e.details.batch)).toEqual([0, 1, 2, 3]);
    const devices = sent.flatMap((e) => e.devices);
    expect(new Set(devices).size).toBe(devices.length);
    expect(devices.sort()).toEqual([...IDS].sort());
    const after = await revisions();
    for (const dev of IDS) expect(after[dev], dev).toBe(before[dev] + 1);
  }, 150_000);
});
