/**
 * 16 clients over the agent's Unix socket on the conv net of bench/_convnet.ts (a model that
 * computes ~1-2 ms per inference), against 16 concurrent in-process onnxruntime-node runs of the
 * same model file, measured in the same run. Goal: at least 0.9 of in-process throughput.
 *
 * The rows run twice: on the conv net with a fixed batch of 1 (batching off), and on the same
 * net exported with a dynamic batch dimension and `dynamic_batching` in its model JSON
 * (OUTPOST_BENCH_BATCHING, JSON, sets the block; default max_batch_size 8, no delay). Each is
 * compared with in-process runs of its own model file: 16 concurrent session.run calls,
 * unbatched, as an app would write them, with the session options the agent's sessions get
 * (one intra-op thread: the agent leaves the other core to the requests). A last row compares the
 * batched socket with an in-process app on onnxruntime's own defaults, which put both cores on
 * the model.
 * Batching off and on take turns in four rounds of 750 ms each side, so a change of the
 * machine's load hits both alike. The CPU rows count client + agent per request against the
 * in-process run alone; they move less with the load than the throughput share.
 *
 * Two more rows without OUTPOST_BENCH_QUICK: the default infer() (answers in fresh buffers), and
 * shared memory in and out (each client's input and output in its own registered region, so no
 * tensor byte crosses the socket; the conv net runs on a worker thread, so the agent copies the
 * input from the mapping once and writes the output into it once).
 * The agent runs in a child process (bench/_bench-agent.ts). OUTPOST_BENCH_QUICK=1 leaves out the
 * last four rows (ort defaults, default infer(), shared memory without and with batching) for
 * repeated A/B runs: only the goal's rows.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { AgentClient, SharedMemoryObject } from '../agent/client/index.js';
import {
  BATCHED_ID,
  baselineSessionOptions,
  benchBatching,
  CONV_ID,
  startAgentProcess,
  type BenchAgent,
} from './_bench-agent.js';
import { CONV_SIZE } from './_convnet.js';
import { batchTotals, contended, inProcessRow, latencies, outputsInto, type Contended } from './_throughput.js';
import type { BenchRow } from './run.js';

export async function run(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-16-'));
  let agent: BenchAgent | undefined;
  let client: AgentClient | undefined;
  const sessions: ort.InferenceSession[] = [];
  const objects: SharedMemoryObject[] = [];
  try {
    agent = await startAgentProcess(dir);
    client = new AgentClient({ socket: agent.socket });
    const c = client;
    const options = baselineSessionOptions();
    const conv = await ort.InferenceSession.create(join(dir, 'conv', 'model.onnx'), options);
    // The batched conv net: the same weights with a dynamic batch dimension; its in-process
    // baseline runs that same file, unbatched.
    const dyn = await ort.InferenceSession.create(join(dir, 'conv-batched', 'model.onnx'), options);
    // What an app in-process gets with onnxruntime's own defaults (intra-op threads = physical
    // cores, spinning on): not the goal's baseline, which runs the agent's session options, but
    // the other honest comparison on this machine (docs/performance.md, round 7).
    const ortDefaults = await ort.InferenceSession.create(join(dir, 'conv', 'model.onnx'));
    sessions.push(conv, dyn, ortDefaults);

    const convN = 3 * CONV_SIZE * CONV_SIZE;
    const convData = Float32Array.from({ length: convN }, (_, i) => (i % 255) / 255);
    const convShape = [1, 3, CONV_SIZE, CONV_SIZE];
    const convFeeds = { data: new ort.Tensor('float32', convData, convShape) };
    const convLocal = () => conv.run(convFeeds);
    const dynLocal = () => dyn.run(convFeeds);
    const defaultsLocal = () => ortDefaults.run(convFeeds);
    // The socket side runs as a performance-minded app would: outputs read into arrays it keeps
    // (one per client loop). The default infer() is measured too.
    const convInput = { data: { dtype: 'float32' as const, shape: convShape, data: convData } };
    const convOuts = await outputsInto(c, CONV_ID);
    const convSocket = (i?: number) => c.infer(CONV_ID, convInput, { binary: true, outputs: convOuts(i) });
    const convDefault = () => c.infer(CONV_ID, convInput, { binary: true });
    const dynOuts = await outputsInto(c, BATCHED_ID);
    const dynSocket = (i?: number) => c.infer(BATCHED_ID, convInput, { binary: true, outputs: dynOuts(i) });
    // Shared memory both ways, as a camera app would run it: each client loop has its own object
    // holding its input and, after it, the output the agent writes (no tensor bytes on the socket).
    const outMeta = (await c.model(CONV_ID)).outputs[0]!;
    const outBytes = 4 * outMeta.shape.reduce((a, b) => a * Math.max(1, b), 1);
    const inBytes = convData.byteLength;
    const viaShm = await Promise.all(
      Array.from({ length: 16 }, async (_, i) => {
        const o = SharedMemoryObject.create(`/outpost-bench16-${process.pid}-${i}`, inBytes + outBytes);
        objects.push(o);
        o.write(0, convData);
        const region = `b16-${i}`;
        await c.registerSharedMemory(region, o.key, inBytes + outBytes);
        return {
          input: {
            data: { dtype: 'float32' as const, shape: convShape, shm: { region, offset: 0, byteSize: inBytes } },
          },
          outputs: [{ name: outMeta.name, shm: { region, offset: inBytes, byteSize: outBytes } }],
        };
      }),
    );
    const convShm = (i = 0) => c.infer(CONV_ID, viaShm[i]!.input, { outputs: viaShm[i]!.outputs });
    // The batched net has the same output size per row, so the same regions serve it (the pairs
    // take turns, never at once).
    const dynShm = (i = 0) => c.infer(BATCHED_ID, viaShm[i]!.input, { outputs: viaShm[i]!.outputs });
    for (let i = 0; i < 20; i++) await Promise.all([convSocket(), dynSocket(), convShm(i % 16), dynShm((i + 8) % 16)]);

    const alone = await latencies(60, convLocal);
    const before = await batchTotals(c, BATCHED_ID);
    const quick = process.env.OUTPOST_BENCH_QUICK === '1';
    const [off, on, vsDefaults] = (await contended(agent.child, 4, 750, [
      { local: convLocal, socket: convSocket },
      { local: dynLocal, socket: dynSocket },
      ...(quick ? [] : [{ local: defaultsLocal, socket: dynSocket }]),
    ])) as [Contended, Contended, Contended | undefined];
    const after = await batchTotals(c, BATCHED_ID);
    const meanRows = (after.rows - before.rows) / (after.runs - before.runs);
    const [dflt, shm, dynShmRow] = quick
      ? []
      : await contended(agent.child, 2, 1500, [
          { local: convLocal, socket: convDefault },
          { local: convLocal, socket: convShm },
          { local: dynLocal, socket: dynShm },
        ]);

    const cpuRow = (name: string, r: Contended, note: string): BenchRow => ({
      name,
      metric: 'us',
      ours: r.clientCpu + r.agentCpu,
      baseline: r.baseCpu,
      baselineName: 'in-process ort',
      ratio: (r.clientCpu + r.agentCpu) / r.baseCpu,
      note: `client ${r.clientCpu.toFixed(0)} + agent ${r.agentCpu.toFixed(0)} us (event loop ${r.agentMainCpu.toFixed(0)}); ${note}`,
    });
    const rows: BenchRow[] = [
      cpuRow('CPU per request, 16 clients, conv net', off, 'ratio = more CPU by'),
      inProcessRow(
        `throughput, 16 clients, conv net ${CONV_SIZE}x${CONV_SIZE}`,
        'req/s',
        off.ours,
        off.base,
        `goal >= 0.9; batching off; ${alone.p50.toFixed(2)} ms/inference alone`,
      ),
      cpuRow('CPU per request, 16 clients, conv net, batching', on, `${meanRows.toFixed(1)} rows per run`),
      inProcessRow(
        'throughput, 16 clients, conv net, dynamic batching',
        'req/s',
        on.ours,
        on.base,
        `goal >= 0.9; agent batches (${JSON.stringify(benchBatching())}); baseline: 16 concurrent unbatched session.run, same file`,
      ),
    ];
    if (vsDefaults)
      rows.push(
        inProcessRow(
          'throughput, 16 clients, batching, vs ort defaults in-process',
          'req/s',
          vsDefaults.ours,
          vsDefaults.base,
          `not the goal's baseline: in-process with onnxruntime's default threads (both cores on the model, spinning; ${(vsDefaults.baseCpu / 1000).toFixed(2)} ms CPU per request)`,
        ),
      );
    if (dflt)
      rows.push(
        inProcessRow(
          'throughput, 16 clients, conv net, default infer()',
          'req/s',
          dflt.ours,
          dflt.base,
          `client ${dflt.clientCpu.toFixed(0)} + agent ${dflt.agentCpu.toFixed(0)} us CPU per request`,
        ),
      );
    if (shm)
      rows.push(
        inProcessRow(
          'throughput, 16 clients, conv net, shared memory in and out',
          'req/s',
          shm.ours,
          shm.base,
          `each client's input and output in its own region; client ${shm.clientCpu.toFixed(0)} + agent ${shm.agentCpu.toFixed(0)} us CPU per request`,
        ),
      );
    if (dynShmRow)
      rows.push(
        inProcessRow(
          'throughput, 16 clients, conv net, shared memory, batching',
          'req/s',
          dynShmRow.ours,
          dynShmRow.base,
          `the batched net, regions as above; client ${dynShmRow.clientCpu.toFixed(0)} + agent ${dynShmRow.agentCpu.toFixed(0)} us CPU per request`,
        ),
      );
    return rows;
  } finally {
    for (const s of sessions) await s.release();
    if (client && objects.length > 0) await client.unregisterSharedMemory().catch(() => undefined);
    for (const o of objects) o.destroy();
    client?.close();
    agent?.child.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  }
}
