import { OutpostError } from '../../../protocol/errors/index.js';
import type { Logger } from '../../../protocol/log.js';
import type { DynamicBatching } from '../../../protocol/manifest-batching.js';
import type { BatchStats, DType, Tensor, TensorData, TensorInfo } from '../backend.js';
import { arrayClassOf, elementCount, showShape } from '../tensors.js';
import { queueFull } from './run-queue.js';

/**
 * Dynamic batching (`dynamic_batching` in the model JSON; docs/runtime.md, "Dynamic batching"):
 * the run queue of a session (run-queue.ts has the unbatched one) whose waiting requests are run
 * together, along the first dimension, when a run slot frees up, and whose outputs are split back
 * per request.
 *
 * Invariants:
 * - A request never waits for company while the session is idle: with no run in flight the head
 *   of the queue is dispatched at once with whatever else waits. So a batch is what accumulated
 *   while the engine was busy, and needs no timer; max_queue_delay_microseconds only lets a batch
 *   wait for more while another run is in flight (when the wait costs the engine nothing).
 * - Only requests with the same input names, dtypes and trailing dimensions join one batch, up to
 *   max_batch_size rows; the head of the queue is always in the next batch (nothing starves).
 *   A request that cannot join (its inputs disagree on the first dimension, or it alone is larger
 *   than max_batch_size) runs alone, as it would with batching off.
 * - The same bound as unbatched: at most maxQueued requests wait, the next is refused with
 *   RUNTIME_QUEUE_FULL.
 * - Each request gets what it would get alone: its rows of every output (views of the batch's
 *   output memory, lent until every request of the batch released its part), or its own error. A
 *   batch that fails with RUNTIME_INFERENCE_FAILED (a failure that can depend on one request's
 *   values) is run again one request at a time, so only the request that fails alone fails.
 *   Errors of the engine itself (a worker that died) fail the batch's requests with that code,
 *   as each of them would have failed. A model whose outputs turn out not to split by the batch
 *   (an output whose first dimension is not the batch) stops batching, with a warning.
 */

/** An input as the engine takes it: its dims and its data in consecutive parts (one per request). */
export interface Feed {
  dtype: DType;
  shape: number[];
  parts: readonly TensorData[];
}

/** A run's outputs, and `release` to call once nothing reads them (pooled memory). */
export interface Ran {
  outputs: Record<string, Tensor>;
  release?: () => void;
}

interface Job {
  inputs: Record<string, Tensor>;
  /** Requests with the same key can share a run; undefined: this one runs alone. */
  key: string | undefined;
  /** Its first dimension (rows). */
  size: number;
  at: bigint;
  resolve(r: Ran): void;
  reject(e: unknown): void;
}

export interface BatchQueueOptions {
  what: string;
  /** Runs handed to the engine at once (batches, not requests). */
  parallel: number;
  maxQueued: number;
  retryAfterSeconds?: number;
  policy: DynamicBatching;
  exec(feeds: Record<string, Feed>): Promise<Ran>;
  log: Logger;
}

export class BatchQueue {
  private running = 0;
  private readonly waiting: Job[] = [];
  private timer: NodeJS.Timeout | undefined;
  private splits = true;
  private readonly runs = new Map<number, number>();
  readonly stats: BatchStats;

  constructor(private readonly o: BatchQueueOptions) {
    this.stats = { maxBatchSize: o.policy.max_batch_size, runs: this.runs };
  }

  async run(inputs: Record<string, Tensor>): Promise<Ran> {
    if (this.running >= this.o.parallel && this.waiting.length >= this.o.maxQueued)
      throw queueFull(this.o.what, this.running, this.waiting.length, this.o.maxQueued, this.o.retryAfterSeconds ?? 1);
    return new Promise<Ran>((resolve, reject) => {
      const { key, size } = signature(inputs, this.o.policy.max_batch_size);
      this.waiting.push({ inputs, key, size, at: process.hrtime.bigint(), resolve, reject });
      this.pump();
    });
  }

  get depth(): { running: number; queued: number } {
    return { running: this.running, queued: this.waiting.length };
  }

  private pump(): void {
    while (this.running < this.o.parallel && this.waiting.length > 0) {
      const jobs = this.take();
      if (!jobs) return;
      this.running++;
      void this.execute(jobs).finally(() => {
        this.running--;
        this.pump();
      });
    }
  }

  /** The next batch (the head and what may join it), or undefined to wait for more (timer armed). */
  private take(): Job[] | undefined {
    const head = this.waiting[0]!;
    if (!this.splits || head.key === undefined) return this.waiting.splice(0, 1);
    const { max_batch_size: max, max_queue_delay_microseconds: delay, preferred_batch_size: preferred } = this.o.policy;
    const picked: number[] = [];
    let total = 0;
    for (let i = 0; i < this.waiting.length && total < max; i++) {
      const j = this.waiting[i]!;
      if (j.key !== head.key || total + j.size > max) continue;
      picked.push(i);
      total += j.size;
    }
    const target = preferred ? preferred[preferred.length - 1]! : max;
    if (this.running > 0 && delay > 0 && total < target) {
      const waited = Number(process.hrtime.bigint() - head.at) / 1e3;
      if (waited < delay) {
        // Timers tick in whole milliseconds: a shorter delay waits at most until the next tick.
        this.timer ??= setTimeout(
          () => {
            this.timer = undefined;
            this.pump();
          },
          Math.max(1, Math.ceil((delay - waited) / 1e3)),
        );
        return undefined;
      }
    }
    if (preferred && !preferred.includes(total)) {
      // The largest preferred size that fits what waits; none fits: all of it (up to max).
      const fit = [...preferred].reverse().find((p) => p <= total);
      if (fit !== undefined) while (total > fit && picked.length > 1) total -= this.waiting[picked.pop()!]!.size;
    }
    const jobs = picked.map((i) => this.waiting[i]!);
    for (let k = picked.length - 1; k >= 0; k--) this.waiting.splice(picked[k]!, 1);
    if (this.waiting.length === 0 && this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    return jobs;
  }

  private async execute(jobs: Job[]): Promise<void> {
    if (jobs.length === 1) return this.alone(jobs);
    let ran: Ran;
    try {
      ran = await this.o.exec(feedsOf(jobs));
    } catch (err) {
      if (err instanceof OutpostError && err.code === 'RUNTIME_INFERENCE_FAILED') return this.alone(jobs);
      for (const j of jobs) j.reject(err);
      return;
    }
    const sizes = jobs.map((j) => j.size);
    const parts = split(ran, sizes);
    if (!parts) {
      ran.release?.();
      this.splits = false;
      this.o.log.warn(
        { model: this.o.what, outputs: Object.fromEntries(Object.entries(ran.outputs).map(([n, t]) => [n, t.shape])) },
        'an output of a batched run does not have the batch as its first dimension; dynamic batching is off for this model from now on (remove dynamic_batching from its model JSON)',
      );
      return this.alone(jobs);
    }
    this.count(sizes.reduce((a, b) => a + b, 0));
    jobs.forEach((j, i) => j.resolve(parts[i]!));
  }

  /** Each job as its own run, one after another (in the slot the batch held). */
  private async alone(jobs: Job[]): Promise<void> {
    for (const j of jobs) {
      try {
        const r = await this.o.exec(feedsOf([j]));
        this.count(j.size);
        j.resolve(r);
      } catch (err) {
        j.reject(err);
      }
    }
  }

  private count(size: number): void {
    this.runs.set(size, (this.runs.get(size) ?? 0) + 1);
  }
}

/** The batching key of a request: names, dtypes and trailing dims; its rows (first dimension). */
function signature(inputs: Record<string, Tensor>, max: number): { key: string | undefined; size: number } {
  let key = '';
  let size = -1;
  for (const name of Object.keys(inputs).sort()) {
    const t = inputs[name]!;
    if (t.shape.length === 0 || (size !== -1 && t.shape[0] !== size)) return { key: undefined, size: 1 };
    size = t.shape[0]!;
    key += `${name}\u0000${t.dtype}\u0000${t.shape.slice(1).join(',')}\u0001`;
  }
  return size < 1 || size > max ? { key: undefined, size: Math.max(1, size) } : { key, size };
}

/** The feeds of one request run alone. */
export function feedsOfOne(inputs: Record<string, Tensor>): Record<string, Feed> {
  const feeds: Record<string, Feed> = {};
  for (const [name, t] of Object.entries(inputs)) feeds[name] = { dtype: t.dtype, shape: t.shape, parts: [t.data] };
  return feeds;
}

function feedsOf(jobs: readonly Job[]): Record<string, Feed> {
  const feeds: Record<string, Feed> = {};
  const rows = jobs.reduce((a, j) => a + j.size, 0);
  for (const [name, t] of Object.entries(jobs[0]!.inputs))
    feeds[name] = {
      dtype: t.dtype,
      shape: jobs.length === 1 ? t.shape : [rows, ...t.shape.slice(1)],
      parts: jobs.map((j) => j.inputs[name]!.data),
    };
  return feeds;
}

/** Every output cut into each request's rows (views, no copy), or undefined if one does not split. */
function split(ran: Ran, sizes: readonly number[]): Ran[] | undefined {
  const rows = sizes.reduce((a, b) => a + b, 0);
  const outs = Object.entries(ran.outputs);
  if (outs.some(([, t]) => t.shape[0] !== rows || t.data.length !== elementCount(t.shape))) return undefined;
  let left = sizes.length;
  let at = 0;
  return sizes.map((n) => {
    const outputs: Record<string, Tensor> = {};
    for (const [name, t] of outs) {
      const per = t.data.length / rows;
      outputs[name] = {
        dtype: t.dtype,
        shape: [n, ...t.shape.slice(1)],
        data: t.data.subarray(at * per, (at + n) * per),
      };
    }
    at += n;
    let done = false;
    const release = () => {
      if (done) return;
      done = true;
      if (--left === 0) ran.release?.();
    };
    return { outputs, release };
  });
}

/**
 * dynamic_batching needs every input and output to have a dynamic first dimension (the batch):
 * a model exported with a fixed batch of 1 cannot take two requests in one run. Refused at load,
 * as Triton refuses a max_batch_size the model cannot honour, rather than ignored: the developer
 * asked for batching, and a version that silently does not batch would hide it. The activation
 * gate then keeps the previous version serving and reports this message.
 */
export function checkBatchable(file: string, inputs: readonly TensorInfo[], outputs: readonly TensorInfo[]): void {
  for (const [kind, list] of [
    ['input', inputs],
    ['output', outputs],
  ] as const) {
    const fixed = list.find((t) => t.shape.length === 0 || t.shape[0] !== null);
    if (fixed)
      throw new OutpostError(
        'RUNTIME_MODEL_LOAD_FAILED',
        `${file}: model_parameters.dynamic_batching is set, but ${kind} "${fixed.name}" has shape ${showShape(fixed.shape)}, whose first dimension is not dynamic; export the model with a dynamic batch axis (-1 or a symbolic name such as "N") on every input and output, or remove dynamic_batching`,
        { file, [kind]: fixed.name, shape: fixed.shape },
      );
  }
}

/** One input's data in one array (an engine on this thread needs that); a worker copies the parts itself. */
export function joinParts(f: Feed): TensorData {
  if (f.parts.length === 1) return f.parts[0]!;
  let n = 0;
  for (const p of f.parts) n += p.length;
  const out = new (arrayClassOf(f.dtype))(n);
  let at = 0;
  for (const p of f.parts) {
    (out as Float32Array).set(p as Float32Array, at);
    at += p.length;
  }
  return out;
}
