/**
 * The agent's footprint against the floor of onnxruntime itself, all in one run on one machine:
 *  - start: wall time from spawning the bundled `outpost-agent run` (dist/agent-bundle/, what
 *    the device package ships) to systemd's READY=1 (the socket listens and every installed
 *    model is loaded and served), with 10 installed models, against a bare Node process that
 *    loads onnxruntime-node and opens the same 10 sessions (bench/_ort-floor.mjs) up to its
 *    READY line. Goal: at most 1.5x, and under 0.35 s.
 *  - idle RSS, 2 s after READY, with 1 and with 10 models against the floor with the same
 *    sessions. Goal: at most 1.2x.
 * Each case runs RUNS times, interleaved so a busy moment of the machine hits every case alike;
 * the rows give the median. No broker is reachable, so the time is the agent's own (READY never
 * waits for the broker). Beside the wall time, each side's main-thread CPU time up to READY
 * (/proc/<pid>/task/<pid>/schedstat, ns): a busy machine stretches the first, much less the second.
 * Both sides inherit this shell's environment; where NODE_EXTRA_CA_CERTS is set (this machine's
 * sessions set it), node reads that bundle at every start, about 85 ms of each side's time here
 * (docs/systemd.md#footprint).
 *
 * The agent's code cache (agent/system/compile-cache.ts) lives in a folder of this run, filled by
 * one start before the measured ones: the rows are a device's every start after its first. The
 * first start after an install (an empty cache, which it then writes after READY) has a row of
 * its own, each run with a fresh folder.
 *
 * The models are installed once by a real in-process agent from a real local cloud (the same
 * path as a deployment), then the models folder is copied for every run, with what the install
 * left in it as a device's folder has it (.outpost/placement.json: agent/runtime/backends/onnx-placement.ts).
 */
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { closedPort, agentEnv, notifyReceiver, spawnAgent } from '../test/helpers/daemon-process.js';
import { ensureBuilt, median } from './_compiled.js';
import { activeAt, startTestFleet, waitFor } from '../test/helpers/fleet.js';
import type { BenchRow } from './run.js';
import { sessionOptionsFor } from '../agent/runtime/backends/onnx-options.js';

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

/** The main thread's CPU time so far, in ms (the first field of schedstat is ns on a CPU). */
async function mainThreadCpuMs(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').catch(() => '');
  return Number(text.split(' ')[0]) / 1e6;
}

async function rssBytes(pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

const SETTLE_MS = 2000;

type Sample = [ms: number, rss: number, cpuMs: number];

/** Spawns the agent bundle, times READY, samples RSS after a settle, stops. */
async function startOnce(root: string, config: string, compileCache: string): Promise<Sample> {
  const rx = notifyReceiver(root);
  const t0 = performance.now();
  const a = spawnAgent({
    config,
    env: agentEnv({ NOTIFY_SOCKET: rx.path, OUTPOST_COMPILE_CACHE: compileCache }),
    compiled: true,
  });
  try {
    await rx.until((m) => m.startsWith('READY=1'), 120_000);
    const ms = performance.now() - t0;
    const cpu = await mainThreadCpuMs(a.child.pid!);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const rss = await rssBytes(a.child.pid!);
    a.signal('SIGTERM');
    await a.exited;
    return [ms, rss, cpu];
  } finally {
    rx.close();
    await a.kill();
  }
}

const FLOOR = fileURLToPath(new URL('./_ort-floor.mjs', import.meta.url));

/**
 * The floor: node + onnxruntime-node + one session per file, opened with the options the agent
 * opens them with (its defaults: bench/_ort-floor.mjs says why); the same Sample as startOnce.
 */
async function floorOnce(files: string[]): Promise<Sample> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [FLOOR, ...files], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, OUTPOST_FLOOR_SESSION_OPTIONS: JSON.stringify(sessionOptionsFor()) },
  });
  try {
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout }).once('line', (l) =>
        l.startsWith('READY') ? resolve() : reject(new Error(l)),
      );
      child.once('exit', (code) => reject(new Error(`the floor process exited ${code}`)));
    });
    const ms = performance.now() - t0;
    const cpu = await mainThreadCpuMs(child.pid!);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    return [ms, await rssBytes(child.pid!), cpu];
  } finally {
    child.kill('SIGTERM');
  }
}

/** The model files the agent serves from a models folder: <owner>/<name>/current/*.onnx. */
async function modelFiles(modelsDir: string): Promise<string[]> {
  const files: string[] = [];
  for (const owner of await readdir(modelsDir, { withFileTypes: true })) {
    if (!owner.isDirectory() || owner.name.startsWith('.')) continue;
    for (const name of await readdir(join(modelsDir, owner.name))) {
      const current = join(modelsDir, owner.name, name, 'current');
      for (const f of await readdir(current).catch(() => [] as string[])) {
        if (f.endsWith('.onnx')) files.push(join(current, f));
      }
    }
  }
  return files.sort();
}

export async function run(): Promise<BenchRow[]> {
  ensureBuilt();
  const root = await mkdtemp(join(tmpdir(), 'outpost-bench-startup-'));
  try {
    await mkdir(join(root, 'one'));
    await mkdir(join(root, 'ten'));
    const one = await installModels(join(root, 'one'), 1);
    const ten = await installModels(join(root, 'ten'), 10);
    const files1 = await modelFiles(one.modelsDir);
    const files10 = await modelFiles(ten.modelsDir);
    if (files1.length !== 1 || files10.length !== 10) {
      throw new Error(`expected 1 and 10 model files, found ${files1.length} and ${files10.length}`);
    }
    const c = { agent0: [], agent1: [], agent10: [], cold10: [], floor1: [], floor10: [] } as Record<string, Sample[]>;
    const cache = join(root, 'compile-cache');
    await startOnce(root, await agentDir(join(root, 'warm-up'), ten.config, ten.modelsDir), cache);
    for (let i = 0; i < RUNS; i++) {
      c.floor1.push(await floorOnce(files1));
      c.agent1.push(await startOnce(root, await agentDir(join(root, `one-${i}`), one.config, one.modelsDir), cache));
      c.floor10.push(await floorOnce(files10));
      c.agent10.push(await startOnce(root, await agentDir(join(root, `ten-${i}`), ten.config, ten.modelsDir), cache));
      c.agent0.push(await startOnce(root, await agentDir(join(root, `empty-${i}`), ten.config, null), cache));
      const cold = join(root, `compile-cache-cold-${i}`);
      c.cold10.push(await startOnce(root, await agentDir(join(root, `cold-${i}`), ten.config, ten.modelsDir), cold));
    }
    const ms = (k: string) => median(c[k].map((x) => x[0]));
    const mib = (k: string) => median(c[k].map((x) => x[1])) / 2 ** 20;
    const cpu = (k: string) => median(c[k].map((x) => x[2]));
    const note = `median of ${RUNS}; agent bundle, spawn to READY=1 (socket listening, models loaded); no broker`;
    const floorName = (n: number) => `node + onnxruntime, ${n} session${n > 1 ? 's' : ''}`;
    return [
      {
        name: 'agent start to READY, 10 models',
        metric: 'ms',
        ours: ms('agent10'),
        baseline: ms('floor10'),
        baselineName: floorName(10),
        ratio: ms('agent10') / ms('floor10'),
        note: `${note}; goal <= 1.5x and < 350 ms`,
      },
      {
        name: 'first start to READY, 10 models',
        metric: 'ms',
        ours: ms('cold10'),
        baseline: ms('floor10'),
        baselineName: floorName(10),
        ratio: ms('cold10') / ms('floor10'),
        note: 'an empty compile cache (the first start after an install or upgrade); written after READY',
      },
      {
        name: 'main-thread CPU to READY, 10 models',
        metric: 'ms',
        ours: cpu('agent10'),
        baseline: cpu('floor10'),
        baselineName: floorName(10),
        ratio: cpu('agent10') / cpu('floor10'),
        note: 'CPU time of the main thread up to READY (what a busy machine stretches least)',
      },
      {
        name: 'agent start to READY, 1 model',
        metric: 'ms',
        ours: ms('agent1'),
        baseline: ms('floor1'),
        baselineName: floorName(1),
        ratio: ms('agent1') / ms('floor1'),
        note: 'the same with one model',
      },
      {
        name: 'agent start to READY, 0 models',
        metric: 'ms',
        ours: ms('agent0'),
        baseline: ms('floor1'),
        baselineName: floorName(1),
        ratio: ms('agent0') / ms('floor1'),
        note: 'what the agent costs before any model',
      },
      {
        // From 1 to 10 models on both sides: onnxruntime's import and init, which the first
        // model pays, is in neither (with 0 models the agent never imports onnxruntime, so
        // (10 - 0) / 10 charged a tenth of it to every model).
        name: 'per installed model',
        metric: 'ms',
        ours: (ms('agent10') - ms('agent1')) / 9,
        baseline: (ms('floor10') - ms('floor1')) / 9,
        baselineName: 'per session in the floor',
        // The floor's sessions cost about 1-2 ms each, within its run-to-run noise: no ratio then.
        ratio:
          ms('floor10') - ms('floor1') > 0
            ? (ms('agent10') - ms('agent1')) / (ms('floor10') - ms('floor1'))
            : undefined,
        note: 'start time per model from 1 to 10 (load + smoke inference + serve)',
      },
      {
        name: 'agent idle RSS, 1 model',
        metric: 'MiB',
        ours: mib('agent1'),
        baseline: mib('floor1'),
        baselineName: floorName(1),
        ratio: mib('agent1') / mib('floor1'),
        note: `${SETTLE_MS / 1000} s after READY; goal <= 1.2x`,
      },
      {
        name: 'agent idle RSS, 10 models',
        metric: 'MiB',
        ours: mib('agent10'),
        baseline: mib('floor10'),
        baselineName: floorName(10),
        ratio: mib('agent10') / mib('floor10'),
        note: `${SETTLE_MS / 1000} s after READY; goal <= 1.2x`,
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
