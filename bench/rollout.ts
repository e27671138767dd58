/**
 * A staged rollout to N light agents (default 500, OUTPOST_BENCH_AGENTS) in batches of 10%
 * (OUTPOST_BENCH_ROLLOUT_BATCH) with a 0.5 s soak: the time from `deploy` to the rollout `done`,
 * the cloud's CPU and RSS while it ran, and the MQTT messages per device.
 *
 * The cloud is a real `outpost cloud start` child process, so its CPU (utime + stime from
 * /proc/<pid>/stat) and RSS (/proc/<pid>/status) are its own, not the agents'. The agents are
 * light agents in this process (bench/_fleet-helpers.ts: real MqttSession + Reconciler + Store,
 * no runtime), which also answer commands with the daemon's own handler and take real telemetry
 * samples (agent/telemetry), because the soak's health check asks every device for one.
 *
 * Baseline in the same run: the same fleet, the previous version deployed all at once (no
 * rollout flags), measured the same way.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudClient } from '../cloud-broker/client/cloud-client.js';
import { FleetClient } from '../cloud-broker/fleet/fleet-client.js';
import { handleCommand } from '../agent/daemon/commands.js';
import { createCommandGate } from '../agent/sync/command-gate.js';
import { NonceStore } from '../agent/sync/nonce-store.js';
import { createTelemetry } from '../agent/telemetry/index.js';
import { silentLogger } from '../protocol/log.js';
import { pollUntil, publishFile, startLightAgent, writeRandomFile, type LightAgent } from './_fleet-helpers.js';
import { procStats, startCloudProcess, type CloudProcess } from './_procs.js';
import type { BenchRow } from './run.js';

const N = Number(process.env.OUTPOST_BENCH_AGENTS ?? 500);
const BATCH = process.env.OUTPOST_BENCH_ROLLOUT_BATCH ?? '10%';
const KB = Number(process.env.OUTPOST_BENCH_ROLLOUT_KB ?? 64);
const MODEL = 'bench/rollout';

interface Counted extends LightAgent {
  messages: { in: number; out: number };
}

/** A light agent that answers commands as the daemon does and counts its MQTT messages. */
async function agent(fleet: FleetClient, id: string, root: string): Promise<Counted> {
  const a = (await startLightAgent(fleet, id, root, silentLogger)) as Counted;
  a.messages = { in: 0, out: 0 };
  const s = a.session;
  const telemetry = createTelemetry({
    deviceId: id,
    modelsDir: a.modelsDir,
    telemetry: { enabled: false, intervalSeconds: 60 },
    log: silentLogger,
    publish: (sample) => s.publishTelemetry(sample),
  });
  for (const m of ['publishReported', 'publishTelemetry', 'respond'] as const) {
    const orig = s[m].bind(s) as (...x: unknown[]) => void;
    (s as unknown as Record<string, unknown>)[m] = (...x: unknown[]) => {
      a.messages.out++;
      orig(...x);
    };
  }
  // Commands are signed envelopes; the light agent checks them with the daemon's own gate.
  const gate = createCommandGate({
    deviceId: id,
    trust: a.trust,
    nonces: new NonceStore(join(a.modelsDir, '.outpost', 'nonces.json')),
  });
  s.on('desired', () => a.messages.in++);
  s.on('command', (name: string, payload: Buffer) => {
    a.messages.in++;
    void handleCommand(name, payload, { gate, reconciler: a.reconciler, telemetry, log: silentLogger }).then((r) =>
      s.respond(name, r),
    );
  });
  return a;
}

const reset = (agents: Counted[]) => {
  for (const a of agents) a.messages = { in: 0, out: 0 };
};
const perDevice = (agents: Counted[]) => agents.reduce((n, a) => n + a.messages.in + a.messages.out, 0) / agents.length;

export async function run(): Promise<BenchRow[]> {
  const work = await mkdtemp(join(tmpdir(), 'outpost-bench-rollout-'));
  const agents: Counted[] = [];
  let cloud: CloudProcess | null = null;
  try {
    const c = await startCloudProcess(join(work, 'cloud'));
    cloud = c;
    const pid = c.pid;
    const catalog = new CloudClient({ url: c.http, token: c.token });
    const fleet = new FleetClient({ url: c.http, token: c.token });
    const versions: number[] = [];
    for (let i = 0; i < 2; i++) {
      const file = join(work, `model-${i}.bin`);
      const sha = await writeRandomFile(file, KB * 1024);
      versions.push((await publishFile(catalog, MODEL, file, sha, KB * 1024)).version);
    }
    for (let i = 0; i < N; i += 25) {
      const ids = Array.from({ length: Math.min(25, N - i) }, (_, k) => `ro-${String(i + k).padStart(4, '0')}`);
      agents.push(...(await Promise.all(ids.map((id) => agent(fleet, id, join(work, 'agents'))))));
    }
    await Promise.all(agents.map((a) => a.ready));
    const idle = await procStats(pid);

    // Baseline: all at once.
    reset(agents);
    let t0 = performance.now();
    let cpu0 = (await procStats(pid)).cpuMs;
    await fleet.deploy({ model: `${MODEL}@${versions[0]}` }, { kind: 'tag', value: 'bench' });
    await pollUntil('all active (plain deploy)', () => agents.every((a) => a.activeAt(MODEL, versions[0])), 300_000);
    const plainMs = performance.now() - t0;
    const plainCpu = (await procStats(pid)).cpuMs - cpu0;
    const plainMsgs = perDevice(agents);

    // The rollout.
    reset(agents);
    t0 = performance.now();
    cpu0 = (await procStats(pid)).cpuMs;
    const res = await fleet.deploy(
      { model: `${MODEL}@${versions[1]}` },
      { kind: 'tag', value: 'bench' },
      {
        batchSize: BATCH.endsWith('%') ? { percent: Number(BATCH.slice(0, -1)) } : { count: Number(BATCH) },
        soakSeconds: 0.5,
        deviceTimeoutSeconds: 120,
      },
    );
    const id = res.rollout!.id;
    let peakRss = 0;
    await pollUntil(
      `rollout ${id} done`,
      async () => {
        peakRss = Math.max(peakRss, (await procStats(pid)).rssMb);
        // The summary (counts only), not the per-device view: polling must not be what we measure.
        const r = (await fleet.rollouts()).find((x) => x.id === id);
        if (r?.state === 'aborted') throw new Error(`rollout ${id} aborted: ${JSON.stringify(r.reason)}`);
        return r?.state === 'done';
      },
      600_000,
      250,
    );
    const rolloutMs = performance.now() - t0;
    const end = await procStats(pid);
    const rolloutCpu = end.cpuMs - cpu0;
    const rolloutMsgs = perDevice(agents);
    const view = await fleet.rolloutView(id);
    if (!agents.every((a) => a.activeAt(MODEL, versions[1])))
      throw new Error('rollout done but not every agent active');
    const note = `${N} light agents (real MqttSession + Reconciler + Store + telemetry command; no runtime) in the bench process; the cloud a separate \`outpost cloud start\` process; ${view.batchCount} batches of ${BATCH}, soak 0.5 s, ${KB} KiB model`;
    return [
      {
        name: `rollout to ${N} agents in ${view.batchCount} batches: deploy -> done`,
        metric: 'ms',
        ours: rolloutMs,
        baseline: plainMs,
        baselineName: 'plain deploy -> all active',
        ratio: rolloutMs / plainMs,
        note,
      },
      {
        name: `rollout to ${N} agents: cloud CPU`,
        metric: 'ms CPU',
        ours: rolloutCpu,
        baseline: plainCpu,
        baselineName: 'plain deploy',
        ratio: rolloutCpu / plainCpu,
        note: `${(rolloutCpu / N).toFixed(1)} ms per device (plain ${(plainCpu / N).toFixed(1)})`,
      },
      {
        name: `rollout to ${N} agents: cloud RSS`,
        metric: 'MB',
        ours: peakRss,
        baseline: idle.rssMb,
        baselineName: 'idle, agents connected',
        ratio: peakRss / idle.rssMb,
        note: `peak sampled while the rollout ran; process high-water mark ${end.peakMb.toFixed(0)} MB`,
      },
      {
        name: `rollout to ${N} agents: MQTT messages per device`,
        metric: 'messages',
        ours: rolloutMsgs,
        baseline: plainMsgs,
        baselineName: 'plain deploy',
        ratio: rolloutMsgs / plainMsgs,
        note: 'desired + commands in, reports + telemetry + responses out; the soak adds a telemetry request and sample',
      },
    ];
  } finally {
    await Promise.all(agents.map((a) => a.stop().catch(() => undefined)));
    await cloud?.stop();
    await rm(work, { recursive: true, force: true });
  }
}
