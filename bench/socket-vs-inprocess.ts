/**
 * Inference over the agent's Unix socket against onnxruntime-node called in-process, at
 * 1x3x224x224 float32 (588 KiB per request), measured in the same run:
 * - latency p50/p99 with one client: in-process session.run vs the socket (binary tensors, the
 *   input in a shared-memory region, and JSON tensors), and the agent's CPU time per request;
 * - throughput with 1 and 16 concurrent clients, against in-process runs at the same concurrency.
 * The 16 clients on the conv net (a model that computes ~1-2 ms) are bench/socket-16-clients.ts.
 *
 * The agent runs in a child process (bench/_bench-agent.ts), as on a device where apps and the
 * agent are separate processes. The model is the generated color classifier
 * (GlobalAveragePool + Gemm): its compute is tiny, so the ratios show the API's overhead at its
 * worst; a real network's seconds of compute would dilute them.
 *
 * OUTPOST_BENCH_LANE=0 serves the agent's socket with node:http alone, as before the fast lane
 * (agent/api/lane/), for A/B runs of the same code at the same load (docs/performance.md).
 * OUTPOST_BENCH_ROWS=latency prints only the one-client latency rows, their floors and the agent's
 * CPU per request (a few seconds instead of half a minute, for interleaved A/B runs).
 *
 * The latency rows interleave their requests (one in-process run, one of each socket kind, one of
 * each floor, in a new shuffled order each round), so a change of load hits every row alike. The
 * floors (bench/_socket-floor.ts) are plain `net` round trips to a server in the agent's process,
 * and a pread of 588 KiB from /dev/shm: what a request over this socket pays before any HTTP or
 * Outpost code.
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { AgentClient, SharedMemoryObject } from '../agent/client/index.js';
import {
  agentGcPauses,
  baselineSessionOptions,
  cpuPerCall,
  MODEL_ID as ID,
  MODEL_SIZE as SIZE,
  startAgentProcess,
  type BenchAgent,
} from './_bench-agent.js';
import {
  floorClient,
  floorPayload,
  closeRunQueueFds,
  overlapping,
  recordGcPauses,
  runQueueMs,
} from './_socket-floor.js';
import { percentile } from './_stats.js';
import { inProcessRow as row, latencies, outputsInto, throughput } from './_throughput.js';
import type { BenchRow } from './run.js';

const SHAPE = [1, 3, SIZE, SIZE];
const N = SHAPE.reduce((a, b) => a * b, 1);
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
 * p50/p99 of each of `fns`, their requests interleaved (one of each, in turn, `iterations` times,
 * each round in a new shuffled order).
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
  // Each round runs the rows in a new order (a seeded shuffle, the same in every run), so every
  // row follows every other row about equally often. In one fixed order each row always followed
  // the same one: the row after the in-process run met an agent whose caches that run had just
  // evicted, and the row after another socket request met a warm one (docs/performance.md).
  let seed = 0x2545f491;
  const order = [...keys];
  for (let i = 0; i < iterations; i++) {
    for (let j = order.length - 1; j > 0; j--) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      const r = (seed >>> 8) % (j + 1);
      [order[j], order[r]] = [order[r]!, order[j]!];
    }
    for (const k of order) {
      const c0 = runQueueMs(process.pid);
      const a0 = runQueueMs(agentPid);
      const at = performance.timeOrigin + performance.now();
      const t = process.hrtime.bigint();
      await fns[k]();
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      samples[k].push({ ms, at, clientWaitMs: runQueueMs(process.pid) - c0, agentWaitMs: runQueueMs(agentPid) - a0 });
    }
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

export async function run(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-api-'));
  let agent: BenchAgent | undefined;
  let shm: SharedMemoryObject | undefined;
  let client: AgentClient | undefined;
  try {
    agent = await startAgentProcess(dir);
    client = new AgentClient({ socket: agent.socket });
    const c = client;
    // The baseline's sessions get exactly the options the agent's sessions get.
    const session = await ort.InferenceSession.create(join(dir, 'model', 'model.onnx'), baselineSessionOptions());
    const data = Float32Array.from({ length: N }, (_, i) => (i % 255) / 255);
    const feeds = { data: new ort.Tensor('float32', data, SHAPE) };
    const input = { data: { dtype: 'float32' as const, shape: SHAPE, data } };
    const local = () => session.run(feeds);
    // The socket side runs as a performance-minded app would: outputs read into arrays it keeps
    // (one per client loop), `outputs: [{ name, into }]`. The default infer() is measured too.
    const outs = await outputsInto(c, ID);
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
    // Which path the agent took: a mapped region shows in its /proc maps (agent/api/shm.ts).
    const shmPath = readFileSync(`/proc/${agent.child.pid}/maps`, 'utf8').includes(`/dev/shm${shm.key}`)
      ? 'maps the region (zero copy)'
      : 'preads the region (OUTPOST_SHM=pread or no outpost_shm addon)';

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
    // The same 64 B round trip after the agent's process has been idle: this machine's wake-up
    // of a process grows with how long its core slept (docs/performance.md, round 8). A camera
    // app at 30 frames/s leaves the agent idle ~33 ms between requests.
    const afterIdle = async (idleMs: number) => {
      const ms: number[] = [];
      for (let i = 0; i < 400; i++) {
        for (const end = performance.now() + idleMs; performance.now() < end; );
        const t = process.hrtime.bigint();
        await floor.roundTrip(tiny);
        ms.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
      return percentile(ms, 50);
    };
    const idleFloors = { back: await afterIdle(0), one: await afterIdle(1), three: await afterIdle(3) };
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
        note: `goal <= 0.1; input by region; the agent ${shmPath}`,
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
        note: 'the least the pread path (OUTPOST_SHM=pread) can add',
      },
      {
        name: 'floor: shared memory, zero copy (64 B round trip)',
        metric: 'p50 ms',
        ours: lat.floorTiny.p50,
        note: 'the least the mapped path can add: no copy of the tensor at all',
      },
      {
        name: 'floor: 64 B round trip, back to back',
        metric: 'p50 ms',
        ours: idleFloors.back,
        note: 'no other work between round trips: the agent never sleeps long',
      },
      {
        name: 'floor: 64 B round trip, agent idle 1 ms before',
        metric: 'p50 ms',
        ours: idleFloors.one,
        baseline: idleFloors.back,
        baselineName: 'back to back',
        ratio: idleFloors.one / idleFloors.back,
        note: 'the client busy-waits 1 ms between round trips',
      },
      {
        name: 'floor: 64 B round trip, agent idle 3 ms before',
        metric: 'p50 ms',
        ours: idleFloors.three,
        baseline: idleFloors.back,
        baselineName: 'back to back',
        ratio: idleFloors.three / idleFloors.back,
        note: 'what a wake-up costs after a sleep; a 30 frames/s app leaves the agent idle ~33 ms',
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
    const js = await latencies(30, json);
    const { rate: t1Base } = await throughput(1, 1500, local);
    const { rate: t1 } = await throughput(1, 1500, binary);
    const { rate: t16Base } = await throughput(16, 2000, local);
    const { rate: t16 } = await throughput(16, 2000, binary);
    await session.release();
    return [
      ...latencyRows,
      row('socket infer, JSON tensors', 'p50 ms', js.p50, base.p50, '150k floats as JSON text each way'),
      row('throughput, 1 client, binary', 'req/s', t1, t1Base, 'ratio = fraction of in-process'),
      row('throughput, 16 clients, binary', 'req/s', t16, t16Base, 'agent in its own process; 2 cores shared'),
    ];
  } finally {
    if (client) await client.unregisterSharedMemory().catch(() => undefined);
    client?.close();
    shm?.destroy();
    agent?.child.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  }
}
