/**
 * Inference over the agent's Unix socket against onnxruntime-node called in-process, at
 * 1x3x224x224 float32 (588 KiB per request), measured in the same run:
 * - latency p50/p99 with one client: in-process session.run vs the socket (binary tensors, and
 *   JSON tensors);
 * - throughput with 1 and 16 concurrent clients.
 *
 * The agent runs in a child process (this same file with OUTPOST_BENCH_AGENT=dir), as on a device
 * where apps and the agent are separate processes. The model is the generated color classifier
 * (GlobalAveragePool + Gemm): its compute is tiny, so the ratios show the API's overhead at its
 * worst; a real network's seconds of compute would dilute them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { AgentClient } from '../agent/client/index.js';
import { DEFAULT_SESSION_OPTIONS } from '../agent/runtime/backends/onnx.js';
import type { BenchRow } from './run.js';

const SIZE = 224;
const SHAPE = [1, 3, SIZE, SIZE];
const N = SHAPE.reduce((a, b) => a * b, 1);
const ID = 'bench/classifier224';

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function latencies(iterations: number, fn: () => Promise<unknown>): Promise<{ p50: number; p99: number }> {
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

/** Requests per second with `clients` loops running for `ms`. */
async function throughput(clients: number, ms: number, fn: () => Promise<unknown>): Promise<number> {
  let done = 0;
  const end = Date.now() + ms;
  const t = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (Date.now() < end) {
        await fn();
        done++;
      }
    }),
  );
  return done / (Number(process.hrtime.bigint() - t) / 1e9);
}

async function startAgentProcess(dir: string): Promise<{ child: ChildProcess; socket: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], {
    env: { ...process.env, OUTPOST_BENCH_AGENT: dir },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const socket = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c) => {
      out += c;
      const m = /^listening (.+)$/m.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`the bench agent exited with ${code}`)));
  });
  return { child, socket };
}

export async function run(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-api-'));
  let agent: { child: ChildProcess; socket: string } | undefined;
  try {
    agent = await startAgentProcess(dir);
    const client = new AgentClient({ socket: agent.socket });
    const session = await ort.InferenceSession.create(join(dir, 'model', 'model.onnx'), DEFAULT_SESSION_OPTIONS);
    const data = Float32Array.from({ length: N }, (_, i) => (i % 255) / 255);
    const feeds = { data: new ort.Tensor('float32', data, SHAPE) };
    const input = { data: { dtype: 'float32' as const, shape: SHAPE, data } };
    const local = () => session.run(feeds);
    const binary = () => client.infer(ID, input, { binary: true });
    const json = () => client.infer(ID, input);

    const base = await latencies(300, local);
    const bin = await latencies(300, binary);
    const js = await latencies(40, json);
    const t1Base = await throughput(1, 1500, local);
    const t1 = await throughput(1, 1500, binary);
    const t16Base = await throughput(16, 2000, local);
    const t16 = await throughput(16, 2000, binary);
    await session.release();
    const row = (name: string, metric: string, ours: number, baseline: number, note?: string): BenchRow => ({
      name,
      metric,
      ours,
      baseline,
      baselineName: 'in-process ort',
      ratio: ours / baseline,
      ...(note ? { note } : {}),
    });
    return [
      row('socket infer, binary tensors', 'p50 ms', bin.p50, base.p50, 'ratio = slower by'),
      row('socket infer, binary tensors', 'p99 ms', bin.p99, base.p99),
      // The ratio is large because the model computes almost nothing; the added time is what an app pays.
      {
        name: 'socket overhead, binary tensors',
        metric: 'p50 ms added',
        ours: bin.p50 - base.p50,
        note: 'per 588 KiB request, absolute',
      },
      row('socket infer, JSON tensors', 'p50 ms', js.p50, base.p50, '150k floats as JSON text each way'),
      row('socket infer, JSON tensors', 'p99 ms', js.p99, base.p99),
      row('throughput, 1 client, binary', 'req/s', t1, t1Base, 'ratio = fraction of in-process'),
      row('throughput, 16 clients, binary', 'req/s', t16, t16Base, 'agent in its own process; 2 cores shared'),
    ];
  } finally {
    agent?.child.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  }
}

/** The child: a real agent API serving the 224x224 classifier from `dir`. */
async function agentMain(dir: string): Promise<void> {
  const { writeModelFolder } = await import('../test/fixtures/model-folder.js');
  const { Runtime } = await import('../agent/runtime/runtime.js');
  const { servingRuntime } = await import('../agent/api/runtime-adapter.js');
  const { createApiServer } = await import('../agent/api/server.js');
  const { silentLogger } = await import('../protocol/log.js');
  const folder = join(dir, 'model');
  await writeModelFolder(folder, 'classifier', { id: ID, size: [SIZE, SIZE] });
  const runtime = new Runtime({ log: silentLogger });
  await runtime.activate(ID, 1, folder);
  const server = createApiServer({
    runtime: servingRuntime(runtime),
    log: silentLogger,
    limits: { maxConcurrentPerModel: 64 },
  });
  const socket = join(dir, 'agent.sock');
  await server.listen(socket);
  process.stdout.write(`listening ${socket}\n`);
  process.once(
    'SIGTERM',
    () =>
      void server
        .close(500)
        .then(() => runtime.close())
        .then(() => process.exit(0)),
  );
}

if (process.env.OUTPOST_BENCH_AGENT) void agentMain(process.env.OUTPOST_BENCH_AGENT);
