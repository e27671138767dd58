/**
 * The agent's start: wall time from spawning `outpost agent run` to systemd's READY=1 (the
 * socket listens and every installed model is loaded and served), with 0 installed models (the
 * baseline: Node, tsx, config, store, runtime, socket) against 10; and the idle RSS with 10.
 * Each case runs RUNS times; the rows give the median. No broker is reachable, so the time is the
 * agent's own (READY never waits for the broker).
 *
 * The 10 models are installed once by a real in-process agent from a real local cloud (the same
 * path as a deployment), then the models folder is copied for every run.
 */
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closedPort, agentEnv, notifyReceiver, spawnAgent } from '../test/helpers/daemon-process.js';
import { activeAt, startTestFleet, waitFor } from '../test/helpers/fleet.js';
import type { BenchRow } from './run.js';

const RUNS = Number(process.env.OUTPOST_BENCH_RUNS ?? 3);

export interface InstalledModels {
  /** A provisioned agent config whose cloud is unreachable (closed ports). */
  config: Record<string, unknown>;
  /** A models folder holding the installed models; copy it per agent (copyModels). */
  modelsDir: string;
  /** Wall time of publishing nothing, deploying all and waiting until all are active. */
  installMs: number;
}

/** Installs `n` generated classifiers through a real cloud and agent; see the file comment. */
export async function installModels(root: string, n: number): Promise<InstalledModels> {
  const f = await startTestFleet();
  try {
    const ids = Array.from({ length: n }, (_, i) => `bench/model-${i}`);
    for (const id of ids) await f.publish(id);
    const configPath = await f.provision('bench-1');
    const agent = await f.startAgent('bench-1');
    const t0 = performance.now();
    for (const id of ids) await f.fleet.deploy({ model: id }, { kind: 'device', value: 'bench-1' });
    await waitFor('all models active', () => ids.every((id) => activeAt(agent, id, 1)), 120_000);
    const installMs = performance.now() - t0;
    await agent.stop();
    const modelsDir = join(root, 'models-pristine');
    await cp(agent.modelsDir, modelsDir, { recursive: true, verbatimSymlinks: true });
    const config = JSON.parse(await readFile(configPath, 'utf8')) as Record<string, unknown>;
    config.cloud = { http: `http://127.0.0.1:${await closedPort()}`, mqtt: `mqtt://127.0.0.1:${await closedPort()}` };
    return { config, modelsDir, installMs };
  } finally {
    await f.close();
  }
}

/** Writes `dir/agent.json` for one agent with its own copy of `models` (or an empty folder). */
export async function agentDir(
  dir: string,
  base: Record<string, unknown>,
  models: string | null,
  extra: Record<string, unknown> = {},
): Promise<string> {
  await mkdir(dir, { recursive: true });
  const modelsDir = join(dir, 'models');
  if (models) await cp(models, modelsDir, { recursive: true, verbatimSymlinks: true });
  const file = join(dir, 'agent.json');
  await writeFile(
    file,
    JSON.stringify({ ...base, modelsDir, socket: join(dir, 'agent.sock'), log: { level: 'warn' }, ...extra }),
  );
  return file;
}

async function rssBytes(pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Spawns, times READY, samples RSS after a settle, stops; returns [ms, rss]. */
async function startOnce(root: string, config: string): Promise<[number, number]> {
  const rx = notifyReceiver(root);
  const t0 = performance.now();
  const a = spawnAgent({ config, env: agentEnv({ NOTIFY_SOCKET: rx.path }) });
  try {
    await rx.until((m) => m.startsWith('READY=1'), 120_000);
    const ms = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 2000));
    const rss = await rssBytes(a.child.pid!);
    a.signal('SIGTERM');
    await a.exited;
    return [ms, rss];
  } finally {
    rx.close();
    await a.kill();
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function run(): Promise<BenchRow[]> {
  const root = await mkdtemp(join(tmpdir(), 'outpost-bench-startup-'));
  try {
    const ten = await installModels(root, 10);
    const empty: number[][] = [];
    const full: number[][] = [];
    for (let i = 0; i < RUNS; i++) {
      // Interleaved, so a slow moment of the machine hits both cases alike.
      empty.push(await startOnce(root, await agentDir(join(root, `empty-${i}`), ten.config, null)));
      full.push(await startOnce(root, await agentDir(join(root, `ten-${i}`), ten.config, ten.modelsDir)));
    }
    const ms0 = median(empty.map((x) => x[0]));
    const ms10 = median(full.map((x) => x[0]));
    const rss0 = median(empty.map((x) => x[1])) / 2 ** 20;
    const rss10 = median(full.map((x) => x[1])) / 2 ** 20;
    const note = `median of ${RUNS}; spawn to READY=1 (socket listening, models loaded); no broker`;
    return [
      {
        name: 'agent start to READY, 10 models',
        metric: 'ms',
        ours: ms10,
        baseline: ms0,
        baselineName: '0 models',
        ratio: ms10 / ms0,
        note,
      },
      {
        name: 'per installed model',
        metric: 'ms',
        ours: (ms10 - ms0) / 10,
        note: 'extra start time per model (load + serve)',
      },
      {
        name: 'agent idle RSS, 10 models',
        metric: 'MiB',
        ours: rss10,
        baseline: rss0,
        baselineName: '0 models',
        ratio: rss10 / rss0,
        note: '2 s after READY',
      },
      {
        name: 'install 10 models (deploy to all active)',
        metric: 'ms',
        ours: ten.installMs,
        note: 'in-process agent, local cloud; each version is loaded once: the smoke-tested instance is the one activated (Runtime.prepare)',
      },
    ];
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}
