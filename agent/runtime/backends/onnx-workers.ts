import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type * as Ort from 'onnxruntime-node';
import { OutpostError } from '../../../protocol/errors/index.js';
import type { Logger } from '../../../protocol/log.js';
import type { DType, ModelHealth, TensorData } from '../backend.js';
import type { Feed } from './batch-queue.js';
import { arrayClassOf, isDType } from '../tensors.js';
import { WORKER_SOURCE } from './onnx-worker-source.js';
import { Recycler } from './buffer-recycler.js';

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
 * The worker's code is in onnx-worker-source.ts. It only creates sessions and runs them; every
 * check stays on this side.
 *
 * Lifecycle: a worker starts with the first session placed on it and stops when its last session
 * is released, so a runtime that is closed leaves no thread behind. A worker is referenced (keeps
 * the process alive) only while a call to it is pending.
 *
 * Respawn: a worker that dies (a crash in onnxruntime, process.exit in the thread, a resource
 * limit) fails the calls in flight on it with RUNTIME_WORKER_EXITED (503, retryable) and is
 * replaced after a backoff (100 ms, doubling, at most 5 s), its sessions loaded again from their
 * files; calls that arrive meanwhile wait for the replacement. After `restarts` replacements
 * within `windowMs` the slot gives up: its sessions report RUNTIME_WORKER_UNHEALTHY through
 * health() (the runtime shows it in /v2/health/ready, the model's /ready and the reported state)
 * and calls fail with that code until the model is loaded again. Why bounded: a model that kills
 * its thread on every run would otherwise restart forever and burn the device's cores on loads.
 */
type Metadata = readonly Ort.InferenceSession.ValueMetadata[];

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
}

/** One session as the slot must know it to load it again on a replacement worker. */
interface SlotSession {
  load: () => Promise<Uint8Array>;
  options: Ort.InferenceSession.SessionOptions;
  onHealth: Set<() => void>;
}

/** A worker position: the worker running now, and what a replacement needs. */
interface Slot {
  index: number;
  worker: Worker;
  sessions: Map<number, SlotSession>;
  pending: Map<number, Pending>;
  /** Set while a replacement is being started: calls wait for it. */
  restarting?: Promise<void>;
  /** When the last replacements started (within the window). */
  restarts: number[];
  /** Given up (restart bound reached, or a reload failed): calls fail with this. */
  failure?: ModelHealth;
  /** Released (no sessions left): nothing restarts it. */
  stopped?: boolean;
}

export interface RespawnPolicy {
  /** Replacements allowed within windowMs before the slot gives up. */
  restarts: number;
  windowMs: number;
}

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5_000;

/** Every worker thread this process runs; exported so tests can kill one for real (and for diagnostics). */
const liveWorkers = new Set<Worker>();
export function liveOnnxWorkers(): readonly Worker[] {
  return [...liveWorkers];
}

/**
 * Makes `worker` end its thread with process.exit(code) when the next run reaches it, with that
 * run unanswered: how tests stop a worker with runs in flight at a known point. Unused otherwise.
 */
export function exitOnNextRun(worker: Worker, code = 70): void {
  worker.postMessage({ op: 'exit-on-run', code });
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

export interface WorkerSession {
  readonly inputMetadata: Metadata;
  readonly outputMetadata: Metadata;
  /** The outputs, and `release` to call once nothing reads them any more (their memory is reused). */
  run(inputs: Record<string, Feed>): Promise<{ outputs: Record<string, WorkerOutput>; release?: () => void }>;
  release(): Promise<void>;
  /** undefined while the session serves (or is being restarted); why not once its slot gave up. */
  health(): ModelHealth | undefined;
  /** Called when health() changes. */
  onHealthChange(listener: () => void): void;
}

export class OrtWorkers {
  private readonly slots: (Slot | undefined)[];
  private nextId = 1;
  private nextSession = 1;
  private readonly ortPath = createRequire(import.meta.url).resolve('onnxruntime-node');

  constructor(
    count: number,
    private readonly log: Logger,
    private readonly policy: RespawnPolicy = { restarts: 5, windowMs: 60_000 },
  ) {
    this.slots = Array.from({ length: count }, () => undefined);
  }

  /**
   * Loads a session on the worker with the fewest sessions (a new one if a position is free).
   * `reload` gives the model bytes again when a replacement worker must load the session anew
   * (the file, re-read: the bytes are not kept in memory twice).
   */
  async load(
    bytes: Uint8Array,
    options: Ort.InferenceSession.SessionOptions,
    reload: () => Promise<Uint8Array> = async () => bytes,
  ): Promise<WorkerSession> {
    const index = this.pick();
    const slot = (this.slots[index] ??= this.spawn(index));
    const session = this.nextSession++;
    const entry: SlotSession = { load: reload, options, onHealth: new Set() };
    let meta: { inputs: Metadata; outputs: Metadata };
    try {
      meta = (await this.loadOn(slot, session, bytes, options, false)) as typeof meta;
    } catch (err) {
      if (slot.sessions.size === 0) this.stop(slot);
      throw err;
    }
    // Known to the slot only once loaded, so a restart reloads exactly the sessions that exist.
    slot.sessions.set(session, entry);
    let released = false;
    // Buffers that travel to the worker and back (two runs can be in flight: see onnx.ts).
    const pools = { input: new Recycler(), output: new Recycler() };
    // Output bytes per row of the first input, learnt from the last run: the next run's output
    // buffer is sized by its own rows (a batch's rows vary; batch-queue.ts).
    let outputPerRow = 0;
    return {
      inputMetadata: meta.inputs,
      outputMetadata: meta.outputs,
      run: async (inputs) => {
        // All inputs in one pooled buffer at 8-byte aligned offsets: one copy, then moved.
        const layout: { name: string; dtype: DType; dims: number[]; offset: number; length: number }[] = [];
        let total = 0;
        // A batch's input comes in parts, one per request (batch-queue.ts), copied end to end.
        for (const [name, t] of Object.entries(inputs)) {
          total = align(total);
          let length = 0;
          for (const p of t.parts) length += p.length;
          layout.push({ name, dtype: t.dtype, dims: t.shape, offset: total, length });
          for (const p of t.parts) total += p.byteLength;
        }
        const input = pools.input.take(total);
        for (const [i, t] of Object.values(inputs).entries()) {
          let at = layout[i]!.offset;
          for (const p of t.parts) {
            new Uint8Array(input, at, p.byteLength).set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength));
            at += p.byteLength;
          }
        }
        const rows = Object.values(inputs)[0]?.shape[0] ?? 1;
        const out = pools.output.take(outputPerRow * rows);
        const transfer = out ? [input, out] : [input];
        const r = (await this.call(slot, { op: 'run', session, feeds: layout, input, out }, transfer)) as RunReply;
        pools.input.give(r.input);
        outputPerRow = r.outputs.reduce((n, o) => Math.max(n, o.offset + o.bytes), 0) / rows;
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
          if (!slot.failure && !slot.restarting) await this.call(slot, { op: 'release', session }, []);
        } finally {
          this.dropSession(slot, session);
        }
      },
      health: () => slot.failure,
      onHealthChange: (listener) => entry.onHealth.add(listener),
    };
  }

  private pick(): number {
    let best = 0;
    for (let i = 0; i < this.slots.length; i++) {
      const t = this.slots[i];
      if (!t) return i;
      if (t.sessions.size < this.slots[best]!.sessions.size) best = i;
    }
    return best;
  }

  private loadOn(
    slot: Slot,
    session: number,
    bytes: Uint8Array,
    options: Ort.InferenceSession.SessionOptions,
    restart: boolean,
  ): Promise<unknown> {
    // The model bytes are copied into a buffer of their own, which is then moved, not cloned.
    const copy = bytes.slice();
    return this.call(slot, { op: 'load', session, bytes: copy, options }, [copy.buffer], restart);
  }

  private spawn(index: number): Slot {
    const slot: Slot = { index, worker: this.newWorker(), sessions: new Map(), pending: new Map(), restarts: [] };
    this.wire(slot);
    return slot;
  }

  private newWorker(): Worker {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { ort: this.ortPath }, name: 'outpost-onnx' });
    worker.unref();
    liveWorkers.add(worker);
    return worker;
  }

  /** Wires the replies and the death of the worker `slot` runs now. */
  private wire(slot: Slot): void {
    const worker = slot.worker;
    let gone = false;
    const died = (why: string) => {
      if (gone) return;
      gone = true;
      liveWorkers.delete(worker);
      if (slot.worker === worker) this.onDeath(slot, why);
    };
    worker.on('message', (m: { id: number; ok: boolean; value?: unknown; message?: string }) => {
      const p = slot.pending.get(m.id);
      if (!p) return;
      slot.pending.delete(m.id);
      if (slot.pending.size === 0) worker.unref();
      if (m.ok) p.resolve(m.value);
      else p.reject(new Error(m.message));
    });
    worker.on('error', (err) => died(`failed: ${err.message}`));
    worker.on('exit', (code) => died(`exited with code ${code}`));
  }

  /** The worker of `slot` stopped without being asked: fail what was in flight, then replace it or give up. */
  private onDeath(slot: Slot, why: string): void {
    const inFlight = slot.pending.size;
    for (const p of slot.pending.values())
      p.reject(
        new OutpostError(
          'RUNTIME_WORKER_EXITED',
          `the onnx worker thread running this model ${why} while the request was in flight; it is being restarted, retry`,
          { worker: slot.index },
        ),
      );
    slot.pending.clear();
    if (slot.stopped || slot.failure) return;
    if (slot.sessions.size === 0) {
      this.stop(slot);
      return;
    }
    const now = Date.now();
    slot.restarts = slot.restarts.filter((t) => now - t < this.policy.windowMs);
    if (slot.restarts.length >= this.policy.restarts) {
      this.giveUp(
        slot,
        `the onnx worker thread running this model stopped ${slot.restarts.length + 1} times within ${this.policy.windowMs / 1000} s (last: ${why}), so the agent stopped restarting it. The agent log has each exit; fix the cause (memory, a model that crashes onnxruntime), then load the model again (POST /v2/repository/models/{name}/load), restart the agent, or deploy another version. onnx.workerRestarts and onnx.workerRestartWindowMs set the bound`,
      );
      return;
    }
    slot.restarts.push(now);
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (slot.restarts.length - 1));
    this.log.error(
      { worker: slot.index, why, inFlight, restart: slot.restarts.length, delayMs: delay },
      'onnx worker thread stopped; restarting it',
    );
    const restart = (async () => {
      await new Promise((r) => setTimeout(r, delay).unref());
      if (slot.stopped || slot.sessions.size === 0) return;
      slot.worker = this.newWorker();
      this.wire(slot);
      try {
        for (const [id, s] of slot.sessions) await this.loadOn(slot, id, await s.load(), s.options, true);
        this.log.info({ worker: slot.index, sessions: slot.sessions.size }, 'onnx worker thread restarted');
      } catch (err) {
        // The replacement died too: its own death handler counts it and decides.
        if (err instanceof OutpostError && err.code === 'RUNTIME_WORKER_EXITED') return;
        this.giveUp(
          slot,
          `the onnx worker thread running this model was restarted, but the model could not be loaded again: ${(err as Error).message}. Load the model again or deploy another version`,
        );
      }
    })();
    const restarting: Promise<void> = restart.finally(() => {
      if (slot.restarting === restarting) slot.restarting = undefined;
    });
    slot.restarting = restarting;
  }

  private giveUp(slot: Slot, message: string): void {
    if (slot.failure) return;
    slot.failure = { code: 'RUNTIME_WORKER_UNHEALTHY', message };
    this.log.error({ worker: slot.index }, message);
    // A new load takes a fresh position; this slot only answers for the sessions it had.
    if (this.slots[slot.index] === slot) this.slots[slot.index] = undefined;
    liveWorkers.delete(slot.worker);
    void slot.worker.terminate();
    for (const s of slot.sessions.values()) for (const l of s.onHealth) l();
  }

  private async call(
    slot: Slot,
    message: Record<string, unknown>,
    transfer: ArrayBuffer[],
    restart = false,
  ): Promise<unknown> {
    // The restart's own loads go to the new worker; every other call waits for the restart (a
    // replacement that dies while loading starts another restart, hence the loop).
    while (slot.restarting && !restart) await slot.restarting;
    if (slot.stopped) throw new Error('the onnx worker thread was stopped (no sessions left)');
    if (slot.failure) throw new OutpostError('RUNTIME_WORKER_UNHEALTHY', slot.failure.message, { worker: slot.index });
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { resolve, reject });
      if (slot.pending.size === 1) slot.worker.ref();
      slot.worker.postMessage({ id, ...message }, transfer);
    });
  }

  private dropSession(slot: Slot, session: number): void {
    slot.sessions.delete(session);
    if (slot.sessions.size === 0) this.stop(slot);
  }

  private stop(slot: Slot): void {
    if (slot.stopped) return;
    slot.stopped = true;
    if (this.slots[slot.index] === slot) this.slots[slot.index] = undefined;
    liveWorkers.delete(slot.worker);
    void slot.worker.terminate();
  }
}
