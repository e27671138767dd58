/**
 * The agent's idle cost as systemd runs it: two spawned compiled `outpost-agent run` processes side by
 * side (same machine, same window, so both see the same background load), one with telemetry
 * on at its shortest allowed interval (5 s: the config schema's minimum; the "1 s" is
 * below what a device may configure), one with telemetry off. Both serve one installed model and
 * have no broker reachable (they retry with backoff), so the difference is telemetry's.
 *
 * Measured from /proc over OUTPOST_BENCH_SECONDS (default 60, the minute) after READY:
 * CPU as (utime + stime) / wall, RSS sampled every second (mean and max).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentEnv, notifyReceiver, spawnAgent, type AgentProcess } from '../test/helpers/daemon-process.js';
import { agentDir, installModels } from './agent-startup.js';
import { ensureBuilt } from './_compiled.js';
import { procStats } from './_procs.js';
import type { BenchRow } from './run.js';

const SECONDS = Number(process.env.OUTPOST_BENCH_SECONDS ?? 60);
const cpuMs = async (pid: number) => (await procStats(pid)).cpuMs;

async function rssBytes(pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

interface Idle {
  cpuPercent: number;
  rssMean: number;
  rssMax: number;
}

export async function run(): Promise<BenchRow[]> {
  ensureBuilt();
  const root = await mkdtemp(join(tmpdir(), 'outpost-bench-idle-'));
  const agents: AgentProcess[] = [];
  try {
    const one = await installModels(root, 1);
    const start = async (name: string, telemetry: boolean): Promise<AgentProcess> => {
      const file = await agentDir(join(root, name), one.config, one.modelsDir, {
        telemetry: { enabled: telemetry, intervalSeconds: 5 },
        mqtt: { reconnectMinMs: 1000, reconnectMaxMs: 60_000 },
      });
      const rx = notifyReceiver(root);
      const a = spawnAgent({ config: file, env: agentEnv({ NOTIFY_SOCKET: rx.path }), compiled: true });
      agents.push(a);
      await rx.until((m) => m.startsWith('READY=1'), 60_000);
      rx.close();
      return a;
    };
    const on = await start('telemetry-on', true);
    const off = await start('telemetry-off', false);
    // Let start-up work (model load, first GC) settle before the window opens.
    await new Promise((r) => setTimeout(r, 2000));
    const pids = [on.child.pid!, off.child.pid!];
    const t0 = performance.now();
    const c0 = await Promise.all(pids.map(cpuMs));
    const rss: number[][] = [[], []];
    while (performance.now() - t0 < SECONDS * 1000) {
      await new Promise((r) => setTimeout(r, 1000));
      const now = await Promise.all(pids.map(rssBytes));
      now.forEach((v, i) => rss[i].push(v));
    }
    const wall = (performance.now() - t0) / 1000;
    const c1 = await Promise.all(pids.map(cpuMs));
    const idle: Idle[] = pids.map((_, i) => ({
      cpuPercent: ((c1[i] - c0[i]) / 1000 / wall) * 100,
      rssMean: rss[i].reduce((a, b) => a + b, 0) / rss[i].length,
      rssMax: Math.max(...rss[i]),
    }));
    const [tOn, tOff] = idle;
    const MiB = 1024 * 1024;
    const note = `${Math.round(wall)} s idle, 1 model, no broker; telemetry every 5 s`;
    return [
      {
        name: 'agent idle CPU',
        metric: '% of one core',
        ours: tOn.cpuPercent,
        baseline: tOff.cpuPercent,
        baselineName: 'telemetry off',
        ratio: tOff.cpuPercent > 0 ? tOn.cpuPercent / tOff.cpuPercent : undefined,
        note: `${note}; /proc ticks are 10 ms`,
      },
      {
        name: 'agent idle RSS (mean)',
        metric: 'MiB',
        ours: tOn.rssMean / MiB,
        baseline: tOff.rssMean / MiB,
        baselineName: 'telemetry off',
        ratio: tOn.rssMean / tOff.rssMean,
        note,
      },
      {
        name: 'agent idle RSS (max)',
        metric: 'MiB',
        ours: tOn.rssMax / MiB,
        baseline: tOff.rssMax / MiB,
        baselineName: 'telemetry off',
        ratio: tOn.rssMax / tOff.rssMax,
        note,
      },
    ];
  } finally {
    for (const a of agents) {
      a.signal('SIGTERM');
      await Promise.race([a.exited, new Promise((r) => setTimeout(r, 10_000))]);
      await a.kill();
    }
    await rm(root, { recursive: true, force: true });
  }
}
