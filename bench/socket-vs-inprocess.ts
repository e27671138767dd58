/**
 * Inference over the agent's Unix socket against onnxruntime-node called in-process, at
 * 1x3x224x224 float32 (588 KiB per request), measured in the same run:
 * - latency p50/p99 with one client: in-process session.run vs the socket (binary tensors, the
 *   input in a shared-memory region, and JSON tensors), and the agent's CPU time per request;
 * - throughput with 1 and 16 concurrent clients, and with 16 on the conv net of bench/_convnet.ts
 *   (a model that computes ~1-2 ms), against in-process runs at the same concurrency.
 *
 * The agent runs in a child process (this same file with OUTPOST_BENCH_AGENT=dir), as on a device
 * where apps and the agent are separate processes. The model is the generated color classifier
 * (GlobalAveragePool + Gemm): its compute is tiny, so the ratios show the API's overhead at its
 * worst; a real network's seconds of compute would dilute them.
 *
 * OUTPOST_BENCH_LANE=0 serves the agent's socket with node:http alone, as before the fast lane
 * (agent/api/lane/), for A/B runs of the same code at the same load (docs/performance.md).
 * OUTPOST_BENCH_ROWS=latency prints only the one-client latency rows, their floors and the agent's
 * CPU per request (a few seconds instead of half a minute, for interleaved A/B runs).
 *
 * The latency rows interleave their requests (one in-process run, one of each socket kind, one of
 * each floor, and again), so a change of load hits every row alike. The floors (bench/_socket-floor.ts)
 * are plain `net` round trips to a server in the agent's process, and a pread of 588 KiB from
 * /dev/shm: what a request over this socket pays before any HTTP or Outpost code.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { AgentClient, SharedMemoryObject } from '../agent/client/index.js';
import { sessionOptionsFor, type OnnxSettings } from '../agent/runtime/backends/onnx-options.js';
import { CONV_SIZE, writeConvNetFolder } from './_convnet.js';
import { performance } from 'node:perf_hooks';
import {
  floorClient,
  floorPayload,
  closeRunQueueFds,
  overlapping,
  recordGcPauses,
  runQueueMs,
  startFloorServer,
} from './_socket-floor.js';
import { percentile } from './_stats.js';
import type { BenchRow } from './run.js';

const SIZE = 224;
const SHAPE = [1, 3, SIZE, SIZE];
const N = SHAPE.reduce((a, b) => a * b, 1);
const ID = 'bench/classifier224';
const CONV_ID = 'bench/convnet';

/** Mean ms of a set of requests, and the run-queue wait of this process's and the agent's main thread in them. */
interface Waits {
  ms: number;
  /** Wall-clock ms (performance.timeOrigin-based) when the request started. */
  at: number;
  clientWaitMs: number;
  agentWaitMs: number;
}

interface Latency {
  p50: number;
  p99: number;
  /** Mean ms of the median 20% and of the slowest 1% of requests, and the run-queue wait in them. */
  middle: Waits;
  slowest: Waits;
  /** The slowest 1% as [start, end] wall-clock ms, to lay GC pauses over. */
  slowestSpans: [number, number][];
}

/**
 * p50/p99 of each of `fns`, their requests interleaved (one of each, in turn, `iterations` times).
 * Around each request, outside its timed span, the run-queue wait of the main threads of this
 * process and of `agentPid` is read, so the slowest requests can say whether they waited for a core.
 */
async function interleaved<K extends string>(
  iterations: number,
  fns: Record<K, () => Promise<unknown>>,
  agentPid: number,
): Promise<Record<K, Latency>> {
  const keys = Object.keys(fns) as K[];
  for (let i = 0; i < Math.min(50, iterations); i++) for (const k of keys) await fns[k]();
  const samples = Object.fromEntries(keys.map((k) => [k, [] as Waits[]])) as Record<K, Waits[]>;
  for (let i = 0; i < iterations; i++)
    for (const k of keys) {
      const c0 = runQueueMs(process.pid);
      const a0 = runQueueMs(agentPid);
      const at = performance.timeOrigin + performance.now();
      const t = process.hrtime.bigint();
      await fns[k]();
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      samples[k].push({ ms, at, clientWaitMs: runQueueMs(process.pid) - c0, agentWaitMs: runQueueMs(agentPid) - a0 });
    }
  const mean = (xs: Waits[]): Waits => ({
    ms: xs.reduce((a, x) => a + x.ms, 0) / xs.length,
    at: Number.NaN,
    clientWaitMs: xs.reduce((a, x) => a + x.clientWaitMs, 0) / xs.length,
    agentWaitMs: xs.reduce((a, x) => a + x.agentWaitMs, 0) / xs.length,
  });
  const out = {} as Record<K, Latency>;
  for (const k of keys) {
    const byTime = samples[k].sort((a, b) => a.ms - b.ms);
    const ms = byTime.map((x) => x.ms);
    out[k] = {
      p50: percentile(ms, 50),
      p99: percentile(ms, 99),
      middle: mean(byTime.slice(Math.floor(byTime.length * 0.4), Math.ceil(byTime.length * 0.6))),
      slowest: mean(byTime.slice(Math.floor(byTime.length * 0.99))),
      slowestSpans: byTime.slice(Math.floor(byTime.length * 0.99)).map((x) => [x.at, x.at + x.ms]),
    };
  }
  return out;
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

/** Requests per second (and how many were done) with `clients` loops running for `ms`. */
async function throughput(
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

export async function startAgentProcess(dir: string): Promise<{ child: ChildProcess; socket: string }> {
  // OUTPOST_BENCH_AGENT_FLAGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/p") profiles the agent side.
  const flags = (process.env.OUTPOST_BENCH_AGENT_FLAGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...flags, '--import', 'tsx', fileURLToPath(import.meta.url)], {
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

/** The agent's CPU time (user + system, microseconds) so far, asked over the IPC channel. */
function agentCpu(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(Number(m)));
    child.send('cpu');
  });
}

/** The agent's garbage-collection pauses since it started serving (see recordGcPauses). */
function agentGcPauses(child: ChildProcess): Promise<[number, number][]> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as [number, number][]));
    child.send('gc');
  });
}

/** Agent CPU microseconds per call of `fn`, over `n` sequential calls. */
async function cpuPerCall(child: ChildProcess, n: number, fn: () => Promise<unknown>): Promise<number> {
  const before = await agentCpu(child);
  for (let i = 0; i < n; i++) await fn();
  return ((await agentCpu(child)) - before) / n;
}

export async function run(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-api-'));
  let agent: { child: ChildProcess; socket: string } | undefined;
  let shm: SharedMemoryObject | undefined;
  let client: AgentClient | undefined;
  try {
    agent = await startAgentProcess(dir);
    client = new AgentClient({ socket: agent.socket });
    const c = client;
    // The baseline's sessions get exactly the options the agent's sessions get.
    const options = sessionOptionsFor(benchOnnxSettings());
    const session = await ort.InferenceSession.create(join(dir, 'model', 'model.onnx'), options);
    const conv = await ort.InferenceSession.create(join(dir, 'conv', 'model.onnx'), options);
    const data = Float32Array.from({ length: N }, (_, i) => (i % 255) / 255);
    const feeds = { data: new ort.Tensor('float32', data, SHAPE) };
    const input = { data: { dtype: 'float32' as const, shape: SHAPE, data } };
    const local = () => session.run(feeds);
    // The socket side runs as a performance-minded app would: outputs read into arrays it keeps
    // (one per client loop), `outputs: [{ name, into }]`. The default infer() is measured too.
    const outputsInto = async (id: string) => {
      const o = (await c.model(id)).outputs[0]!;
      const n = o.shape.reduce((a, b) => a * Math.max(1, b), 1);
      const perLoop = Array.from({ length: 16 }, () => [{ name: o.name, into: new Float32Array(n) }]);
      return (i = 0) => perLoop[i]!;
    };
    const outs = await outputsInto(ID);
    const binaryDefault = () => c.infer(ID, input, { binary: true });
    const binary = (i?: number) => c.infer(ID, input, { binary: true, outputs: outs(i) });
    const json = () => c.infer(ID, input);

    // Shared memory: the tensor is written into the object once, as a camera would fill it.
    shm = SharedMemoryObject.create(`/outpost-bench-${process.pid}`, data.byteLength);
    shm.write(0, data);
    await c.registerSharedMemory('bench', shm.key, data.byteLength);
    const viaShm = {
      data: { dtype: 'float32' as const, shape: SHAPE, shm: { region: 'bench', offset: 0, byteSize: data.byteLength } },
    };
    const shared = () => c.infer(ID, viaShm, { binary: true });

    const convN = 3 * CONV_SIZE * CONV_SIZE;
    const convData = Float32Array.from({ length: convN }, (_, i) => (i % 255) / 255);
    const convShape = [1, 3, CONV_SIZE, CONV_SIZE];
    const convFeeds = { data: new ort.Tensor('float32', convData, convShape) };
    const convLocal = () => conv.run(convFeeds);
    const convInput = { data: { dtype: 'float32' as const, shape: convShape, data: convData } };
    const convOuts = await outputsInto(CONV_ID);
    const convSocket = (i?: number) => c.infer(CONV_ID, convInput, { binary: true, outputs: convOuts(i) });
    const convDefault = () => c.infer(CONV_ID, convInput, { binary: true });

    // The floors: a plain net round trip to a server in the agent's process (64 bytes, and the
    // tensor's 588 KiB), and the pread the agent does for a shared-memory input.
    const floor = await floorClient(join(dir, 'floor.sock'));
    const tiny = floorPayload(64);
    const tensorBytes = floorPayload(data.byteLength);
    const shmFd = openSync(join('/dev/shm', shm.key.slice(1)), 'r');
    const preadInto = new Uint8Array(data.byteLength);
    const pread = async () => {
      for (let done = 0; done < preadInto.byteLength; )
        done += readSync(shmFd, preadInto, done, preadInto.byteLength - done, done);
    };
    const clientGc = recordGcPauses();
    // 1,000 of each, so that the slowest 1% are 10 requests.
    const lat = await interleaved(
      1000,
      {
        local,
        binary,
        binaryDefault,
        shared,
        floorTiny: () => floor.roundTrip(tiny),
        floorTensor: () => floor.roundTrip(tensorBytes),
        pread,
      },
      agent.child.pid!,
    );
    floor.close();
    closeSync(shmFd);
    clientGc.stop();
    closeRunQueueFds();
    const gcs = { client: clientGc.pauses(), agent: await agentGcPauses(agent.child) };
    const base = lat.local;
    const bin = lat.binary;
    const viaShmLat = lat.shared;
    const cpuBin = await cpuPerCall(agent.child, 200, binary);
    const cpuShm = await cpuPerCall(agent.child, 200, shared);
    const row = (name: string, metric: string, ours: number, baseline: number, note?: string): BenchRow => ({
      name,
      metric,
      ours,
      baseline,
      baselineName: 'in-process ort',
      ratio: ours / baseline,
      ...(note ? { note } : {}),
    });
    const waits = (w: Waits, d: number) =>
      `${w.ms.toFixed(d)} ms: client ${w.clientWaitMs.toFixed(d)} + agent ${w.agentWaitMs.toFixed(d)} waiting`;
    const gcNote = (l: Latency, side: 'client' | 'agent') => {
      const o = overlapping(l.slowestSpans, gcs[side]);
      return `${o.count} (${o.ms.toFixed(1)} ms of pause)`;
    };
    const waitNote = (l: Latency) =>
      `slowest 1% (${l.slowestSpans.length}): ${waits(l.slowest, 2)} in the run queue; met a GC pause in the client ${gcNote(l, 'client')}, in the agent ${gcNote(l, 'agent')}; median 20% ${waits(l.middle, 3)}`;
    const latencyRows: BenchRow[] = [
      row('socket infer, binary tensors', 'p50 ms', bin.p50, base.p50, 'ratio = slower by'),
      row('socket infer, binary tensors', 'p99 ms', bin.p99, base.p99),
      // The ratio is large because the model computes almost nothing; the added time is what an app pays.
      {
        name: 'socket overhead, binary tensors',
        metric: 'p50 ms added',
        ours: bin.p50 - base.p50,
        note: 'goal <= 0.3; per 588 KiB request',
      },
      {
        name: 'socket overhead, binary tensors',
        metric: 'p99 ms added',
        ours: bin.p99 - base.p99,
        note: `goal <= 1; ${waitNote(bin)}`,
      },
      {
        name: 'socket overhead, binary, default infer()',
        metric: 'p50 ms added',
        ours: lat.binaryDefault.p50 - base.p50,
        note: "answer in the client's own buffer",
      },
      {
        name: 'socket overhead, shared memory',
        metric: 'p50 ms added',
        ours: viaShmLat.p50 - base.p50,
        note: 'goal <= 0.1; input by region',
      },
      {
        name: 'socket overhead, shared memory',
        metric: 'p99 ms added',
        ours: viaShmLat.p99 - base.p99,
        note: waitNote(viaShmLat),
      },
      {
        name: 'floor: net round trip, 588 KiB request',
        metric: 'p50 ms',
        ours: lat.floorTensor.p50,
        note: `p99 ${lat.floorTensor.p99.toFixed(3)}; plain net, no HTTP: the least binary tensors can add`,
      },
      {
        name: 'floor: net round trip, 64 B request',
        metric: 'p50 ms',
        ours: lat.floorTiny.p50,
        note: `p99 ${lat.floorTiny.p99.toFixed(3)}; the two wake-ups of any request`,
      },
      {
        name: 'floor: pread of 588 KiB from /dev/shm',
        metric: 'p50 ms',
        ours: lat.pread.p50,
        note: 'the copy a shared-memory input costs the agent',
      },
      {
        name: 'floor: shared memory (64 B round trip + pread)',
        metric: 'p50 ms',
        ours: lat.floorTiny.p50 + lat.pread.p50,
        note: 'the least shared memory can add',
      },
      {
        name: 'agent CPU per request, binary',
        metric: 'us',
        ours: cpuBin,
        note: 'user+sys of the agent process, load-independent',
      },
      { name: 'agent CPU per request, shared memory', metric: 'us', ours: cpuShm },
    ];
    if (process.env.OUTPOST_BENCH_ROWS === 'latency') return latencyRows;
    const js = await latencies(30, json);
    const { rate: t1Base } = await throughput(1, 1500, local);
    const { rate: t1 } = await throughput(1, 1500, binary);
    const { rate: t16Base } = await throughput(16, 2000, local);
    const { rate: t16 } = await throughput(16, 2000, binary);
    const conv1 = await latencies(60, convLocal);
    // CPU per request on both sides of the 16-client conv run: what the socket path costs in all
    // (this process + the agent) against the in-process run alone; it moves less with the load.
    const cpu0 = process.cpuUsage();
    const { rate: convT16Base, done: convBaseN } = await throughput(16, 3000, convLocal);
    const cpuBase = process.cpuUsage(cpu0);
    const agent0 = await agentCpu(agent.child);
    const cpu1 = process.cpuUsage();
    const { rate: convT16, done: convN16 } = await throughput(16, 3000, convSocket);
    const cpuSock = process.cpuUsage(cpu1);
    const agentSock = (await agentCpu(agent.child)) - agent0;
    const agentD0 = await agentCpu(agent.child);
    const cpuD0 = process.cpuUsage();
    const { rate: convT16Default, done: convN16Default } = await throughput(16, 3000, convDefault);
    const cpuDefault = process.cpuUsage(cpuD0);
    const agentDefault = (await agentCpu(agent.child)) - agentD0;
    await session.release();
    await conv.release();
    return [
      ...latencyRows,
      row('socket infer, JSON tensors', 'p50 ms', js.p50, base.p50, '150k floats as JSON text each way'),
      row('throughput, 1 client, binary', 'req/s', t1, t1Base, 'ratio = fraction of in-process'),
      row('throughput, 16 clients, binary', 'req/s', t16, t16Base, 'agent in its own process; 2 cores shared'),
      {
        name: 'CPU per request, 16 clients, conv net',
        metric: 'us',
        ours: (cpuSock.user + cpuSock.system + agentSock) / convN16,
        baseline: (cpuBase.user + cpuBase.system) / convBaseN,
        baselineName: 'in-process ort',
        ratio: (cpuSock.user + cpuSock.system + agentSock) / convN16 / ((cpuBase.user + cpuBase.system) / convBaseN),
        note: `client ${((cpuSock.user + cpuSock.system) / convN16).toFixed(0)} + agent ${(agentSock / convN16).toFixed(0)} us; ratio = more CPU by`,
      },
      row(
        `throughput, 16 clients, conv net ${CONV_SIZE}x${CONV_SIZE}`,
        'req/s',
        convT16,
        convT16Base,
        `goal >= 0.9; ${conv1.p50.toFixed(2)} ms/inference alone`,
      ),
      row(
        'throughput, 16 clients, conv net, default infer()',
        'req/s',
        convT16Default,
        convT16Base,
        `client ${((cpuDefault.user + cpuDefault.system) / convN16Default).toFixed(0)} + agent ${(agentDefault / convN16Default).toFixed(0)} us CPU per request`,
      ),
    ];
  } finally {
    if (client) await client.unregisterSharedMemory().catch(() => undefined);
    client?.close();
    shm?.destroy();
    agent?.child.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The agent's onnx settings: the defaults, or OUTPOST_BENCH_ONNX (JSON, e.g. '{"workers":0}') to
 * compare settings; both sides of every ratio use the same.
 */
function benchOnnxSettings(): Partial<OnnxSettings> {
  return JSON.parse(process.env.OUTPOST_BENCH_ONNX ?? '{}') as Partial<OnnxSettings>;
}

/** The child: a real agent API serving the 224x224 classifier from `dir`. */
async function agentMain(dir: string): Promise<void> {
  const { writeModelFolder } = await import('../test/fixtures/model-folder.js');
  const { Runtime } = await import('../agent/runtime/runtime.js');
  const { servingRuntime } = await import('../agent/api/runtime-adapter.js');
  const { createApiServer } = await import('../agent/api/server.js');
  const { silentLogger } = await import('../protocol/log.js');
  const { BackendRegistry, defaultEntries } = await import('../agent/runtime/registry.js');
  const folder = join(dir, 'model');
  await writeModelFolder(folder, 'classifier', { id: ID, size: [SIZE, SIZE] });
  const registry = new BackendRegistry({ log: silentLogger, entries: defaultEntries({ onnx: benchOnnxSettings() }) });
  const runtime = new Runtime({ log: silentLogger, registry });
  await runtime.activate(ID, 1, folder);
  await writeConvNetFolder(join(dir, 'conv'), CONV_ID);
  await runtime.activate(CONV_ID, 1, join(dir, 'conv'));
  const gc = recordGcPauses();
  process.on('message', (m) => {
    if (m === 'gc') return void process.send?.(gc.pauses());
    const u = process.cpuUsage();
    process.send?.(u.user + u.system);
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
