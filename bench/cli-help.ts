/**
 * How long `outpost --help` and `outpost-agent --help` take (the built bins, as installed)
 * against `node -e 0`, the floor of any Node CLI on this machine: spawn to exit, RUNS times each,
 * interleaved so a busy moment of the machine hits all three alike; the rows give the median.
 * Goal: at most 1.5x. What is left above the floor is loading the dispatcher; the error catalog
 * loads only when an error is printed, and a verb's modules only when it runs.
 */
import { spawnSync } from 'node:child_process';
import { AGENT_BIN, OUTPOST_BIN, ensureBuilt, median } from './_compiled.js';
import type { BenchRow } from './run.js';

const RUNS = Number(process.env.OUTPOST_BENCH_RUNS ?? 15);

function time(args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}

export async function run(): Promise<BenchRow[]> {
  ensureBuilt();
  const cases = { floor: ['-e', '0'], outpost: [OUTPOST_BIN, '--help'], agent: [AGENT_BIN, '--help'] };
  const ms: Record<keyof typeof cases, number[]> = { floor: [], outpost: [], agent: [] };
  for (const k of Object.keys(cases) as (keyof typeof cases)[]) time(cases[k]); // warm the page cache
  for (let i = 0; i < RUNS; i++) {
    for (const k of Object.keys(cases) as (keyof typeof cases)[]) ms[k].push(time(cases[k]));
  }
  const floor = median(ms.floor);
  const note = `median of ${RUNS}, spawn to exit, dist/ (the agent: its bundle)`;
  return [
    {
      name: 'outpost --help',
      metric: 'ms',
      ours: median(ms.outpost),
      baseline: floor,
      baselineName: 'node -e 0',
      ratio: median(ms.outpost) / floor,
      note: `${note}; goal <= 1.5x`,
    },
    {
      name: 'outpost-agent --help',
      metric: 'ms',
      ours: median(ms.agent),
      baseline: floor,
      baselineName: 'node -e 0',
      ratio: median(ms.agent) / floor,
      note: `${note}; goal <= 1.5x`,
    },
  ];
}
