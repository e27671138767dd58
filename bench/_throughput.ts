/**
 * Throughput and latency loops shared by the socket benches (bench/socket-vs-inprocess.ts,
 * bench/socket-16-clients.ts), and their rows against an in-process baseline (run.ts skips
 * files starting with `_`).
 */
import type { ChildProcess } from 'node:child_process';
import type { AgentClient } from '../agent/client/index.js';
import { agentCpuSplit } from './_bench-agent.js';
import { percentile } from './_stats.js';
import type { BenchRow } from './run.js';

/** p50/p99 ms of `fn` over `iterations` sequential calls, after a short warm-up. */
export async function latencies(iterations: number, fn: () => Promise<unknown>): Promise<{ p50: number; p99: number }> {
  for (let i = 0; i < Math.min(20, iterations); i++) await fn();
  const ms: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t = process.hrtime.bigint();
    await fn();
    ms.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  ms.sort((a, b) => a - b);
  return { p50: percentile(ms, 50), p99: percentile(ms, 99) };
}

/** Requests per second (and how many were done) with `clients` loops running for `ms`. */
export async function throughput(
  clients: number,
  ms: number,
  fn: (client: number) => Promise<unknown>,
): Promise<{ rate: number; done: number }> {
  let done = 0;
  const end = Date.now() + ms;
  const t = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: clients }, async (_, i) => {
      while (Date.now() < end) {
        await fn(i);
        done++;
      }
    }),
  );
  return { rate: done / (Number(process.hrtime.bigint() - t) / 1e9), done };
}

/** What one 16-client comparison measured (rates in req/s, CPU in microseconds per request). */
export interface Contended {
  base: number;
  ours: number;
  baseCpu: number;
  clientCpu: number;
  agentCpu: number;
  agentMainCpu: number;
}

/**
 * 16 clients in-process, then 16 over the socket, for each pair of `pairs`, the pairs taking
 * turns in `rounds` windows of `ms` each (so a change of the machine's load hits every pair
 * alike): rates and CPU per request (this process; the agent's too for the socket side).
 */
export async function contended(
  child: ChildProcess,
  rounds: number,
  ms: number,
  pairs: { local: () => Promise<unknown>; socket: (client: number) => Promise<unknown> }[],
): Promise<Contended[]> {
  const sums = pairs.map(() => ({ baseN: 0, baseS: 0, baseCpu: 0, n: 0, s: 0, cpu: 0, agent: 0, main: 0 }));
  for (let r = 0; r < rounds; r++)
    for (const [i, p] of pairs.entries()) {
      const t = sums[i]!;
      const cpu0 = process.cpuUsage();
      const base = await throughput(16, ms, p.local);
      const cpuBase = process.cpuUsage(cpu0);
      t.baseN += base.done;
      t.baseS += base.done / base.rate;
      t.baseCpu += cpuBase.user + cpuBase.system;
      const agent0 = await agentCpuSplit(child);
      const cpu1 = process.cpuUsage();
      const ours = await throughput(16, ms, p.socket);
      const cpuOurs = process.cpuUsage(cpu1);
      const agent1 = await agentCpuSplit(child);
      t.n += ours.done;
      t.s += ours.done / ours.rate;
      t.cpu += cpuOurs.user + cpuOurs.system;
      t.agent += agent1.total - agent0.total;
      t.main += agent1.main - agent0.main;
    }
  return sums.map((t) => ({
    base: t.baseN / t.baseS,
    ours: t.n / t.s,
    baseCpu: t.baseCpu / t.baseN,
    clientCpu: t.cpu / t.n,
    agentCpu: t.agent / t.n,
    agentMainCpu: t.main / t.n,
  }));
}

/** Rows and runs of `model` so far, from the agent's /metrics histogram (outpost_model_batch_size). */
export async function batchTotals(c: AgentClient, model: string): Promise<{ rows: number; runs: number }> {
  const text = await c.metrics();
  const read = (what: string) =>
    Number(new RegExp(`^outpost_model_batch_size_${what}\\{model="${model}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return { rows: read('sum'), runs: read('count') };
}

/** A row of `ours` against the in-process baseline measured in the same run. */
export function inProcessRow(name: string, metric: string, ours: number, baseline: number, note?: string): BenchRow {
  return {
    name,
    metric,
    ours,
    baseline,
    baselineName: 'in-process ort',
    ratio: ours / baseline,
    ...(note ? { note } : {}),
  };
}

/** The 16 per-client `outputs: [{ name, into }]` of `id`'s first output: arrays each client loop keeps. */
export async function outputsInto(
  c: AgentClient,
  id: string,
): Promise<(client?: number) => { name: string; into: Float32Array }[]> {
  const o = (await c.model(id)).outputs[0]!;
  const n = o.shape.reduce((a, b) => a * Math.max(1, b), 1);
  const perLoop = Array.from({ length: 16 }, () => [{ name: o.name, into: new Float32Array(n) }]);
  return (i = 0) => perLoop[i]!;
}
