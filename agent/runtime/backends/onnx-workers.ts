import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type * as Ort from 'onnxruntime-node';
import type { Logger } from '../../../protocol/log.js';
import type { DType, Tensor, TensorData } from '../backend.js';
import { arrayClassOf, isDType } from '../tensors.js';

/**
 * onnxruntime sessions in worker threads, so that inference and the agent's HTTP work overlap.
 *
 * Why: onnxruntime-node's `session.run` is a synchronous native call inside a `setImmediate`. On
 * the event-loop thread, every millisecond a model computes is a millisecond in which the agent
 * cannot read, parse or answer any other request; with 16 clients the HTTP work then adds to the
 * inference time instead of running beside it (docs/performance.md, "16 clients"). In a worker,
 * the event loop keeps serving sockets while the worker computes.
 *
 * What crosses the thread boundary: each input is copied once into its own ArrayBuffer, which is
 * transferred (not cloned) to the worker; each output's ArrayBuffer is transferred back. A
 * transfer moves the memory, it does not copy it.
 *
 * The worker's code is a plain CommonJS string run with `eval: true`: a worker entry file would
 * be a `.ts` file under tsx and vitest (which neither can start as a worker entry on Node 20) and a
 * `.js` file in dist/. It only creates sessions and runs them; every check stays on this side.
 *
 * Lifecycle: a worker starts with the first session placed on it and stops when its last session
 * is released, so a runtime that is closed leaves no thread behind. A worker is referenced (keeps
 * the process alive) only while a call to it is pending.
 */
const WORKER_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.ort);
const ARRAYS = { float32: Float32Array, float16: Uint16Array, uint8: Uint8Array, bool: Uint8Array, int8: Int8Array, int32: Int32Array, int64: BigInt64Array };
const sessions = new Map();
const align = (n) => (n + 7) & ~7;
async function handle(m) {
  if (m.op === 'load') {
    const s = await ort.InferenceSession.create(m.bytes, m.options);
    sessions.set(m.session, s);
    return [{ inputs: s.inputMetadata, outputs: s.outputMetadata }, []];
  }
  const s = sessions.get(m.session);
  if (!s) throw new Error('no session ' + m.session + ' in this worker');
  if (m.op === 'release') {
    sessions.delete(m.session);
    await s.release();
    return [null, []];
  }
  const feeds = {};
  for (const f of m.feeds) feeds[f.name] = new ort.Tensor(f.dtype, new ARRAYS[f.dtype](m.input, f.offset, f.length), f.dims);
  const out = await s.run(feeds);
  // Copied into the caller's buffer (memory already touched) and moved back: transferring
  // onnxruntime's own output memory costs a full copy into fresh pages (docs/performance.md).
  const names = Object.keys(out);
  let total = 0;
  for (const n of names) total = align(total) + ((out[n].data && out[n].data.byteLength) || 0);
  const buf = m.out && m.out.byteLength >= total ? m.out : new ArrayBuffer(Math.max(8, total));
  const outputs = [];
  let at = 0;
  for (const n of names) {
    const t = out[n];
    const d = t.data && t.data.byteLength !== undefined ? t.data : undefined;
    at = align(at);
    if (d) new Uint8Array(buf, at, d.byteLength).set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    outputs.push({ name: n, type: t.type, dims: t.dims, offset: at, bytes: d ? d.byteLength : 0 });
    at += d ? d.byteLength : 0;
  }
  const transfer = [buf, m.input];
  if (m.out && m.out !== buf) transfer.push(m.out);
  return [{ outputs, out: buf, input: m.input }, transfer];
}
parentPort.on('message', (m) => {
  handle(m).then(
    ([value, transfer]) => parentPort.postMessage({ id: m.id, ok: true, value }, transfer),
    (err) => parentPort.postMessage({ id: m.id, ok: false, message: String((err && err.message) || err)}),
  );
});
`;

type Metadata = readonly Ort.InferenceSession.ValueMetadata[];

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
}

interface Thread {
  worker: Worker;
  sessions: number;
  pending: Map<number, Pending>;
  /** Why the worker stopped, once it has; calls on it then fail with this. */
  dead?: string;
}

export interface WorkerOutput {
  name: string;
  type: string;
  dims: readonly number[];
  data: unknown;
}

interface RunReply {
  outputs: { name: string; type: string; dims: number[]; offset: number; bytes: number }[];
  out: ArrayBuffer;
  input: ArrayBuffer;
}

const align = (n: number) => (n + 7) & ~7;

type TypedArrayClass = new (buffer: ArrayBuffer, byteOffset: number, length: number) => TensorData;

/**
 * A few ArrayBuffers kept for reuse. Why: on this kind of machine a fresh 512 KiB buffer costs
 * 130-500 us (zeroing and first-touch page faults) against ~30 us to copy into one already used;
 * fresh buffers are also what drives the GC here (external memory pressure).
 */
class Recycler {
  private readonly free: ArrayBuffer[] = [];
  take(bytes: number): ArrayBuffer {
    const i = this.free.findIndex((b) => b.byteLength >= bytes);
    if (i >= 0) return this.free.splice(i, 1)[0]!;
    return new ArrayBuffer(Math.max(8, bytes));
  }
  give(b: ArrayBuffer): void {
    if (b.byteLength === 0 || this.free.length >= 4) return;
    this.free.push(b);
  }
}

export interface WorkerSession {
  readonly inputMetadata: Metadata;
  readonly outputMetadata: Metadata;
  /** The outputs, and `release` to call once nothing reads them any more (their memory is reused). */
  run(inputs: Record<string, Tensor>): Promise<{ outputs: Record<string, WorkerOutput>; release?: () => void }>;
  release(): Promise<void>;
}

export class OrtWorkers {
  private readonly threads: (Thread | undefined)[];
  private nextId = 1;
  private nextSession = 1;
  private readonly ortPath = createRequire(import.meta.url).resolve('onnxruntime-node');

  constructor(
    count: number,
    private readonly log: Logger,
  ) {
    this.threads = Array.from({ length: count }, () => undefined);
  }

  /** Loads a session on the worker with the fewest sessions (a new one if a slot is free). */
  async load(bytes: Uint8Array, options: Ort.InferenceSession.SessionOptions): Promise<WorkerSession> {
    const index = this.pick();
    const thread = this.start(index);
    const session = this.nextSession++;
    thread.sessions++;
    // The model bytes are copied into a buffer of their own, which is then moved, not cloned.
    const copy = bytes.slice();
    let meta: { inputs: Metadata; outputs: Metadata };
    try {
      meta = (await this.call(thread, { op: 'load', session, bytes: copy, options }, [copy.buffer])) as typeof meta;
    } catch (err) {
      this.dropSession(index, thread);
      throw err;
    }
    let released = false;
    // Buffers that travel to the worker and back (two runs can be in flight: see onnx.ts).
    const pools = { input: new Recycler(), output: new Recycler() };
    let lastOutputBytes = 0;
    return {
      inputMetadata: meta.inputs,
      outputMetadata: meta.outputs,
      run: async (inputs) => {
        // All inputs in one pooled buffer at 8-byte aligned offsets: one copy, then moved.
        const layout: { name: string; dtype: DType; dims: number[]; offset: number; length: number }[] = [];
        let total = 0;
        for (const [name, t] of Object.entries(inputs)) {
          total = align(total);
          layout.push({ name, dtype: t.dtype, dims: t.shape, offset: total, length: t.data.length });
          total += t.data.byteLength;
        }
        const input = pools.input.take(total);
        for (const [i, t] of Object.values(inputs).entries())
          new Uint8Array(input, layout[i]!.offset, t.data.byteLength).set(
            new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
          );
        const out = pools.output.take(lastOutputBytes);
        const transfer = out ? [input, out] : [input];
        const r = (await this.call(thread, { op: 'run', session, feeds: layout, input, out }, transfer)) as RunReply;
        pools.input.give(r.input);
        lastOutputBytes = r.out.byteLength;
        const outputs: Record<string, WorkerOutput> = {};
        for (const o of r.outputs) {
          const View = (isDType(o.type) ? arrayClassOf(o.type) : undefined) as
            | (TypedArrayClass & { BYTES_PER_ELEMENT: number })
            | undefined;
          const data = View ? new View(r.out, o.offset, o.bytes / View.BYTES_PER_ELEMENT) : undefined;
          outputs[o.name] = { name: o.name, type: o.type, dims: o.dims, data };
        }
        return { outputs, release: () => pools.output.give(r.out) };
      },
      release: async () => {
        if (released) return;
        released = true;
        try {
          if (!thread.dead) await this.call(thread, { op: 'release', session }, []);
        } finally {
          this.dropSession(index, thread);
        }
      },
    };
  }

  private pick(): number {
    let best = 0;
    for (let i = 0; i < this.threads.length; i++) {
      const t = this.threads[i];
      if (!t) return i;
      if (t.sessions < this.threads[best]!.sessions) best = i;
    }
    return best;
  }

  private start(index: number): Thread {
    const existing = this.threads[index];
    if (existing && !existing.dead) return existing;
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { ort: this.ortPath }, name: 'outpost-onnx' });
    worker.unref();
    const thread: Thread = { worker, sessions: 0, pending: new Map() };
    const fail = (why: string) => {
      if (thread.dead) return;
      thread.dead = why;
      for (const p of thread.pending.values()) p.reject(new Error(why));
      thread.pending.clear();
      if (this.threads[index] === thread) this.threads[index] = undefined;
    };
    worker.on('message', (m: { id: number; ok: boolean; value?: unknown; message?: string }) => {
      const p = thread.pending.get(m.id);
      if (!p) return;
      thread.pending.delete(m.id);
      if (thread.pending.size === 0) worker.unref();
      if (m.ok) p.resolve(m.value);
      else p.reject(new Error(m.message));
    });
    worker.on('error', (err) => {
      this.log.error({ err }, 'onnx worker failed');
      fail(`the onnx worker thread failed: ${err.message}`);
    });
    worker.on('exit', (code) => fail(`the onnx worker thread exited with code ${code}`));
    this.threads[index] = thread;
    return thread;
  }

  private call(thread: Thread, message: Record<string, unknown>, transfer: ArrayBuffer[]): Promise<unknown> {
    if (thread.dead) return Promise.reject(new Error(thread.dead));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      thread.pending.set(id, { resolve, reject });
      if (thread.pending.size === 1) thread.worker.ref();
      thread.worker.postMessage({ id, ...message }, transfer);
    });
  }

  private dropSession(index: number, thread: Thread): void {
    thread.sessions--;
    if (thread.sessions > 0 || thread.dead) return;
    thread.dead = 'the onnx worker thread was stopped (no sessions left)';
    if (this.threads[index] === thread) this.threads[index] = undefined;
    void thread.worker.terminate();
  }
}
