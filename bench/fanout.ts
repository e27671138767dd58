/**
 * Fan-out of one model version (8 MiB, OUTPOST_BENCH_FANOUT_MB) to N agents on this machine
 * (default 200, OUTPOST_BENCH_AGENTS): time from `deploy --all` to every agent reporting the
 * version `active`, and to the cloud's rollout status showing every device converged.
 *
 * Ours: the real cloud (catalog, blob store, signing, fleet, aedes) and N light agents in this
 * process (bench/_fleet-helpers.ts: real MqttSession + Reconciler + Store, each with its own
 * models folder, provisioned through the fleet API; no runtime, no socket API, a no-op
 * activation hook). Each agent receives its signed desired state over MQTT, verifies it,
 * downloads the blob with Range-capable streaming while hashing it, and installs it atomically
 * (fsync, rename, journal).
 *
 * Baseline in the same run: the same blob fetched N times from the same cloud over loopback
 * HTTP, all N requests at once (as the agents start at once), bytes counted and dropped: no
 * MQTT, no signature, no hash, no disk.
 */
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../protocol/log.js';
import {
  pollUntil,
  publishFile,
  startBenchCloud,
  startLightAgent,
  writeRandomFile,
  type BenchCloud,
  type LightAgent,
} from './_fleet-helpers.js';
import type { BenchRow } from './run.js';

const N = Number(process.env.OUTPOST_BENCH_AGENTS ?? 200);
const MB = Number(process.env.OUTPOST_BENCH_FANOUT_MB ?? 8);
const MODEL = 'bench/fanout';
const DEADLINE_MS = 150_000;
/** Devices provisioned and started at a time: the fleet API is sequential (SQLite) anyway. */
const BATCH = 20;

/** N simultaneous GETs of `url`, each with its device's token; resolves with the wall time in ms. */
async function plainDownloads(url: string, tokens: string[], size: number): Promise<number> {
  const agent = new http.Agent({ keepAlive: false });
  const one = (token: string): Promise<void> =>
    new Promise((resolve, reject) => {
      http
        .get(url, { headers: { authorization: `Bearer ${token}` }, agent }, (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            reject(new Error(`GET ${url} answered ${res.statusCode}`));
            return;
          }
          let got = 0;
          res.on('data', (c: Buffer) => (got += c.length));
          res.on('error', reject);
          // A short body would make the baseline look faster than it is.
          res.on('end', () => (got === size ? resolve() : reject(new Error(`got ${got} of ${size} bytes`))));
        })
        .on('error', reject);
    });
  const t0 = performance.now();
  await Promise.all(tokens.map(one));
  const ms = performance.now() - t0;
  agent.destroy();
  return ms;
}

export async function run(): Promise<BenchRow[]> {
  const work = await mkdtemp(join(tmpdir(), 'outpost-bench-fanout-'));
  const agents: LightAgent[] = [];
  let bc: BenchCloud | null = null;
  try {
    bc = await startBenchCloud(join(work, 'cloud'), silentLogger);
    const size = MB * 1024 * 1024;
    const file = join(work, 'model.bin');
    const sha256 = await writeRandomFile(file, size);
    const { version } = await publishFile(bc.catalog, MODEL, file, sha256, size);

    for (let i = 0; i < N; i += BATCH) {
      const ids = Array.from({ length: Math.min(BATCH, N - i) }, (_, k) => `fan-${String(i + k).padStart(4, '0')}`);
      agents.push(
        ...(await Promise.all(ids.map((id) => startLightAgent(bc!.fleet, id, join(work, 'agents'), silentLogger)))),
      );
    }
    const ready = new Set<string>();
    for (const a of agents) void a.ready.then(() => ready.add(a.id));
    await pollUntil(`all ${N} agents connected`, () => ready.size === N, 60_000);

    const t0 = performance.now();
    const deployed = await bc.fleet.deploy({ model: `${MODEL}@${version}` }, { kind: 'all', value: '*' });
    if (deployed.devices.length !== N)
      throw new Error(`deploy targeted ${deployed.devices.length} devices, expected ${N}`);
    await pollUntil(
      `all ${N} agents active at ${MODEL}@${version}`,
      () => agents.every((a) => a.activeAt(MODEL, version)),
      DEADLINE_MS,
    );
    const activeMs = performance.now() - t0;
    // When the last agent got its signed desired state: the MQTT fan-out part of the total.
    const desiredMs = Math.max(...agents.map((a) => a.lastDesiredAt() ?? Infinity)) - t0;
    const fleet = bc.fleet;
    await pollUntil(
      'the rollout status shows every device converged',
      async () => (await fleet.rollout()).filter((d) => d.converged).length === N,
      60_000,
      200,
    );
    const cloudMs = performance.now() - t0;

    // Baseline after the deploy, while the agents sit idle and connected (the same load on the
    // process): a device token reads only blobs deployed to its device, so before the deploy every
    // plain GET is a 404. The blob was written just before publishing, so the page cache is warm
    // for both measurements.
    const baseMs = await plainDownloads(
      bc.catalog.blobUrl(sha256),
      agents.map((a) => a.token),
      size,
    );

    const light = `light agents (real MqttSession + Reconciler + Store, own models folder each, provisioned via the fleet API; no runtime, no socket API, no-op activation), cloud in the same process`;
    const totalMb = (N * size) / 1e6;
    return [
      {
        name: `fan-out ${MB} MiB to ${N} agents: deploy -> all active`,
        metric: 'ms',
        ours: activeMs,
        baseline: baseMs,
        baselineName: `${N} plain GETs`,
        ratio: activeMs / baseMs,
        note: light,
      },
      {
        name: `fan-out ${MB} MiB to ${N} agents: deploy -> rollout converged`,
        metric: 'ms',
        ours: cloudMs,
        baseline: baseMs,
        baselineName: `${N} plain GETs`,
        ratio: cloudMs / baseMs,
        note: 'as the operator sees it: every report back in the cloud',
      },
      {
        name: `fan-out ${MB} MiB to ${N} agents: deploy -> last desired state received`,
        metric: 'ms',
        ours: desiredMs,
        note: 'signing + MQTT delivery share of the total (no baseline)',
      },
      {
        name: `fan-out ${MB} MiB to ${N} agents: throughput`,
        metric: 'MB/s',
        ours: totalMb / (activeMs / 1000),
        baseline: totalMb / (baseMs / 1000),
        baselineName: `${N} plain GETs`,
        ratio: baseMs / activeMs,
        note: 'ratio = ours / baseline (bigger is better); ours also hashes, writes, fsyncs and installs',
      },
    ];
  } finally {
    await Promise.all(agents.map((a) => a.stop().catch(() => undefined)));
    await bc?.cloud.close();
    await rm(work, { recursive: true, force: true });
  }
}
