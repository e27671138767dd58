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
 * OUTPOST_BENCH_ROWS=conv16 prints only the 16-client conv rows (and the conv net's latency alone).
 *
 * The 16-client conv rows run twice: on the conv net as always (a fixed batch of 1, batching
 * off), and on the same net exported with a dynamic batch dimension and `dynamic_batching` in its
 * model JSON (OUTPOST_BENCH_BATCHING, JSON, sets the block; default max_batch_size 8, no delay).
 * Each is compared with in-process runs of its own model file at the same concurrency: 16
 * concurrent session.run calls, unbatched, as an app would write them.
 *
 * The latency rows interleave their requests (one in-process run, one of each socket kind, one of
 * each floor, and again), so a change of load hits every row alike. The floors (bench/_socket-floor.ts)
 * are plain `net` round trips to a server in the agent's process, and a pread of 588 KiB from
 * /dev/shm: what a request over this socket pays before any HTTP or Outpost code.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { AgentClient, SharedMemoryObject } from '../agent/client/index.js';
import { sessionOptionsFor, type OnnxSettings } from '../agent/runtime/backends/onnx-options.js';
import type { DynamicBatching } from '../protocol/manifest-batching.js';
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
import { percentile, statCpuMs } from './_stats.js';
import type { BenchRow } from './run.js';

const SIZE = 224;
const SHAPE = [1, 3, SIZE, SIZE];
const N = SHAPE.reduce((a, b) => a * b, 1);
const ID = 'bench/classifier224';
const CONV_ID = 'bench/convnet';
const BATCHED_ID = 'bench/convnet-batched';
const ROWS = process.env.OUTPOST_BENCH_ROWS;

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

/**
 * The agent's CPU time so far (user + system, microseconds), asked over the IPC channel, and the
 * part of it its event-loop thread spent (from /proc, in 10 ms ticks; 0 where /proc is absent):
 * the rest is the onnx worker thread (and the few others libuv and onnxruntime start).
 */
function agentCpu(child: ChildProcess): Promise<number> {
  return agentCpuSplit(child).then((c) => c.total);
}

function agentCpuSplit(child: ChildProcess): Promise<{ total: number; main: number }> {
  return new Promise((resolve) => {
    child.once('message', (m: { total: number; main: number }) => resolve(m));
    child.send('cpu');
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

/** The agent's garbage-collection pauses since it started serving (see recordGcPauses). */
function agentGcPauses(child: ChildProcess): Promise<[number, number][]> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as [number, number][]));
    child.send('gc');
  });
}

/** What one 16-client comparison measured (rates in req/s, CPU in microseconds per request). */
interface Contended {
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
async function contended(
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
async function batchTotals(c: AgentClient, model: string): Promise<{ rows: number; runs: number }> {
  const text = await c.metrics();
  const read = (what: string) =>
    Number(new RegExp(`^outpost_model_batch_size_${what}\\{model="${model}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return { rows: read('sum'), runs: read('count') };
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

    // The batched conv net: the same weights with a dynamic batch dimension (bench/_convnet.ts);
    // its in-process baseline runs that same file, unbatched.
    const dyn = await ort.InferenceSession.create(join(dir, 'conv-batched', 'model.onnx'), options);
    const dynLocal = () => dyn.run(convFeeds);
    const dynOuts = await outputsInto(BATCHED_ID);
    const dynSocket = (i?: number) => c.infer(BATCHED_ID, convInput, { binary: true, outputs: dynOuts(i) });

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
    // 1,000 of each, so that the slowest 1% are 10 requests (one for the conv rows alone).
    const lat = await interleaved(
      ROWS === 'conv16' ? 1 : 1000,
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
    if (ROWS === 'latency') return latencyRows;
    const rows: BenchRow[] = [];
    if (ROWS !== 'conv16') {
      const js = await latencies(30, json);
      const { rate: t1Base } = await throughput(1, 1500, local);
      const { rate: t1 } = await throughput(1, 1500, binary);
      const { rate: t16Base } = await throughput(16, 2000, local);
      const { rate: t16 } = await throughput(16, 2000, binary);
      rows.push(
        ...latencyRows,
        row('socket infer, JSON tensors', 'p50 ms', js.p50, base.p50, '150k floats as JSON text each way'),
        row('throughput, 1 client, binary', 'req/s', t1, t1Base, 'ratio = fraction of in-process'),
        row('throughput, 16 clients, binary', 'req/s', t16, t16Base, 'agent in its own process; 2 cores shared'),
      );
    }
    const conv1 = await latencies(60, convLocal);
    // CPU per request on both sides of the 16-client conv run: what the socket path costs in all
    // (this process + the agent) against the in-process run alone; it moves less with the load.
    // Batching off and on take turns (four rounds of 750 ms each side), so that both meet the same load.
    const before = await batchTotals(c, BATCHED_ID);
    const [off, on] = (await contended(agent.child, 4, 750, [
      { local: convLocal, socket: convSocket },
      { local: dynLocal, socket: dynSocket },
    ])) as [Contended, Contended];
    const after = await batchTotals(c, BATCHED_ID);
    const meanRows = (after.rows - before.rows) / (after.runs - before.runs);
    const dflt =
      ROWS === 'conv16'
        ? undefined
        : (await contended(agent.child, 1, 3000, [{ local: convLocal, socket: convDefault }]))[0]!;
    await session.release();
    await conv.release();
    await dyn.release();
    const cpuRow = (name: string, r: Contended, note: string): BenchRow => ({
      name,
      metric: 'us',
      ours: r.clientCpu + r.agentCpu,
      baseline: r.baseCpu,
      baselineName: 'in-process ort',
      ratio: (r.clientCpu + r.agentCpu) / r.baseCpu,
      note: `client ${r.clientCpu.toFixed(0)} + agent ${r.agentCpu.toFixed(0)} us (event loop ${r.agentMainCpu.toFixed(0)}); ${note}`,
    });
    const batching = JSON.stringify(benchBatching());
    rows.push(
      cpuRow('CPU per request, 16 clients, conv net', off, 'ratio = more CPU by'),
      row(
        `throughput, 16 clients, conv net ${CONV_SIZE}x${CONV_SIZE}`,
        'req/s',
        off.ours,
        off.base,
        `goal >= 0.9; batching off; ${conv1.p50.toFixed(2)} ms/inference alone`,
      ),
      cpuRow('CPU per request, 16 clients, conv net, batching', on, `${meanRows.toFixed(1)} rows per run`),
      row(
        'throughput, 16 clients, conv net, dynamic batching',
        'req/s',
        on.ours,
        on.base,
        `goal >= 0.9; agent batches (${batching}); baseline: 16 concurrent unbatched session.run, same file`,
      ),
    );
    if (dflt)
      rows.push(
        row(
          'throughput, 16 clients, conv net, default infer()',
          'req/s',
          dflt.ours,
          dflt.base,
          `client ${dflt.clientCpu.toFixed(0)} + agent ${dflt.agentCpu.toFixed(0)} us CPU per request`,
        ),
      );
    return rows;
  } finally {
    if (client) await client.unregisterSharedMemory().catch(() => undefined);
    client?.close();
    shm?.destroy();
    agent?.child.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  }
}

/** The batched conv net's dynamic_batching block: OUTPOST_BENCH_BATCHING (JSON) or max 8, no delay. */
function benchBatching(): DynamicBatching {
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
