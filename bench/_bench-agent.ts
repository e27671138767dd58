/**
 * The bench agent: a real agent API in a child process (this file, run with
 * OUTPOST_BENCH_AGENT=dir), as on a device where apps and the agent are separate processes, and
 * the parent's side of its IPC channel (CPU time, GC pauses). Used by bench/socket-vs-inprocess.ts,
 * bench/socket-16-clients.ts and bench/python-client.ts (run.ts skips files starting with `_`).
 *
 * It serves three models from `dir`: the generated 224x224 color classifier (MODEL_ID, in
 * dir/model), the conv net of bench/_convnet.ts with a fixed batch of 1 (CONV_ID, dir/conv) and
 * the same net with a dynamic batch axis and `dynamic_batching` (BATCHED_ID, dir/conv-batched),
 * plus the floor server of bench/_socket-floor.ts on dir/floor.sock.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sessionOptionsFor, type OnnxSettings } from '../agent/runtime/backends/onnx-options.js';
import type { DynamicBatching } from '../protocol/manifest-batching.js';
import { SOURCE_CHILD_ARGS } from './_compiled.js';
import { writeConvNetFolder } from './_convnet.js';
import { recordGcPauses, startFloorServer } from './_socket-floor.js';
import { statCpuMs } from './_stats.js';

export const MODEL_SIZE = 224;
export const MODEL_ID = 'bench/classifier224';
export const CONV_ID = 'bench/convnet';
export const BATCHED_ID = 'bench/convnet-batched';

export interface BenchAgent {
  child: ChildProcess;
  socket: string;
}

export async function startAgentProcess(dir: string): Promise<BenchAgent> {
  // OUTPOST_BENCH_AGENT_FLAGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/p") profiles the agent side.
  const flags = (process.env.OUTPOST_BENCH_AGENT_FLAGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...flags, ...SOURCE_CHILD_ARGS, fileURLToPath(import.meta.url)], {
    env: { ...process.env, OUTPOST_BENCH_AGENT: dir },
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
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

/**
 * The agent's CPU time so far (user + system, microseconds), asked over the IPC channel, and the
 * part of it its event-loop thread spent (from /proc, in 10 ms ticks; 0 where /proc is absent):
 * the rest is the onnx worker thread (and the few others libuv and onnxruntime start).
 */
export function agentCpuSplit(child: ChildProcess): Promise<{ total: number; main: number }> {
  return new Promise((resolve) => {
    child.once('message', (m: { total: number; main: number }) => resolve(m));
    child.send('cpu');
  });
}

/** Agent CPU microseconds per call of `fn`, over `n` sequential calls. */
export async function cpuPerCall(child: ChildProcess, n: number, fn: () => Promise<unknown>): Promise<number> {
  const before = (await agentCpuSplit(child)).total;
  for (let i = 0; i < n; i++) await fn();
  return ((await agentCpuSplit(child)).total - before) / n;
}

/** The agent's garbage-collection pauses since it started serving (see recordGcPauses). */
export function agentGcPauses(child: ChildProcess): Promise<[number, number][]> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as [number, number][]));
    child.send('gc');
  });
}

/** This process's event-loop thread's CPU microseconds (Linux /proc; 0 elsewhere). */
function mainThreadMicros(): number {
  try {
    return statCpuMs(readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8')) * 1000;
  } catch {
    return 0;
  }
}

/** The batched conv net's dynamic_batching block: OUTPOST_BENCH_BATCHING (JSON) or max 8, no delay. */
export function benchBatching(): DynamicBatching {
  return JSON.parse(
    process.env.OUTPOST_BENCH_BATCHING ?? '{"max_batch_size":8,"max_queue_delay_microseconds":0}',
  ) as DynamicBatching;
}

/**
 * The agent's onnx settings: the defaults, or OUTPOST_BENCH_ONNX (JSON, e.g. '{"workers":0}') to
 * compare settings; both sides of every ratio use the same.
 */
function benchOnnxSettings(): Partial<OnnxSettings> {
  return JSON.parse(process.env.OUTPOST_BENCH_ONNX ?? '{}') as Partial<OnnxSettings>;
}

/** The session options of the in-process baselines: exactly those the agent's sessions get. */
export function baselineSessionOptions(): ReturnType<typeof sessionOptionsFor> {
  return sessionOptionsFor(benchOnnxSettings());
}

/** The child: a real agent API serving the bench's models from `dir`. */
async function agentMain(dir: string): Promise<void> {
  const { writeModelFolder } = await import('../test/fixtures/model-folder.js');
  const { Runtime } = await import('../agent/runtime/runtime.js');
  const { servingRuntime } = await import('../agent/api/runtime-adapter.js');
  const { createApiServer } = await import('../agent/api/server.js');
  const { silentLogger } = await import('../protocol/log.js');
  const { BackendRegistry, defaultEntries } = await import('../agent/runtime/registry.js');
  const folder = join(dir, 'model');
  await writeModelFolder(folder, 'classifier', { id: MODEL_ID, size: [MODEL_SIZE, MODEL_SIZE] });
  const registry = new BackendRegistry({ log: silentLogger, entries: defaultEntries({ onnx: benchOnnxSettings() }) });
  const runtime = new Runtime({ log: silentLogger, registry });
  await runtime.activate(MODEL_ID, 1, folder);
  await writeConvNetFolder(join(dir, 'conv'), CONV_ID);
  await runtime.activate(CONV_ID, 1, join(dir, 'conv'));
  await writeConvNetFolder(join(dir, 'conv-batched'), BATCHED_ID, { batch: 'N', dynamic_batching: benchBatching() });
  await runtime.activate(BATCHED_ID, 1, join(dir, 'conv-batched'));
  const gc = recordGcPauses();
  process.on('message', (m) => {
    if (m === 'gc') return void process.send?.(gc.pauses());
    const u = process.cpuUsage();
    process.send?.({ total: u.user + u.system, main: mainThreadMicros() });
  });
  const server = createApiServer({
    runtime: servingRuntime(runtime),
    log: silentLogger,
    limits: { maxConcurrentPerModel: 64 },
    // OUTPOST_BENCH_LANE=0: node:http alone on the socket, as before the fast lane (A/B runs).
    lane: process.env.OUTPOST_BENCH_LANE !== '0',
  });
  const socket = join(dir, 'agent.sock');
  const floor = await startFloorServer(join(dir, 'floor.sock'));
  await server.listen(socket);
  process.stdout.write(`listening ${socket}\n`);
  process.once(
    'SIGTERM',
    () =>
      void server
        .close(500)
        .then(() => floor.close())
        .then(() => runtime.close())
        .then(() => process.exit(0)),
  );
}

if (process.env.OUTPOST_BENCH_AGENT) void agentMain(process.env.OUTPOST_BENCH_AGENT);
