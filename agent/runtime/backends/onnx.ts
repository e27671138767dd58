import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve, isAbsolute } from 'node:path';
import type * as Ort from 'onnxruntime-node';
import { OutpostError } from '../../../protocol/errors/index.js';
import { silentLogger, type Logger, moduleLogger } from '../../../protocol/log.js';
import {
  lendOutputs,
  type Availability,
  type BatchStats,
  type Backend,
  type LoadedModel,
  type ModelHealth,
  type ModelSource,
  type Tensor,
  type TensorInfo,
} from '../backend.js';
import { allocate, concreteShape, isDType, validateInputs } from '../tensors.js';
import {
  BatchQueue,
  checkBatchable,
  feedsOfOne,
  joinParts,
  type BatchQueueOptions,
  type Feed,
  type Ran,
} from './batch-queue.js';
import { ONNX_DEFAULTS, sessionOptionsFor, type OnnxSettings } from './onnx-options.js';
import { OrtWorkers, type WorkerSession } from './onnx-workers.js';
import type { PlacementMemo } from './onnx-placement.js';
import { RunQueue } from './run-queue.js';

/**
 * The ONNX backend: onnxruntime-node. The CPU provider always runs here; CUDA and TensorRT are
 * used only when the host's onnxruntime lists them AND their provider library is present beside
 * the binding (the npm package lists them as "not bundled" on every Linux host, which does not
 * mean they work). availability() reports exactly which providers are usable and why not.
 *
 * onnxruntime-node loads lazily (a dynamic import) so that a broken install makes this backend
 * unavailable instead of crashing the agent at start.
 */
type OrtModule = typeof Ort;
type Provider = 'tensorrt' | 'cuda' | 'cpu';

export interface OnnxBackendOptions {
  log?: Logger;
  /** Providers to try, in order of preference; unusable ones are skipped. Default: all. */
  providers?: Provider[];
  /** Threads, worker threads and the run queue (agent.json `onnx`; agent/runtime/backends/onnx-options.ts). */
  settings?: Partial<OnnxSettings>;
  /** Passed to every session (merged over the options of `settings`); tests use the same to compare. */
  sessionOptions?: Ort.InferenceSession.SessionOptions;
  /** Trial times learnt earlier (onnx-placement.ts); without it every load measures. */
  placement?: PlacementMemo;
}

/** The options every session gets with the default settings; exported so tests can reproduce a session. */
export const DEFAULT_SESSION_OPTIONS: Ort.InferenceSession.SessionOptions = sessionOptionsFor();

interface Probe {
  ort: OrtModule;
  providers: Provider[];
  details: Record<string, unknown>;
}

const GPU_LIBS: Record<Exclude<Provider, 'cpu'>, string> = {
  cuda: 'libonnxruntime_providers_cuda.so',
  tensorrt: 'libonnxruntime_providers_tensorrt.so',
};

export function createOnnxBackend(opts: OnnxBackendOptions = {}): Backend {
  const log = moduleLogger(opts.log ?? silentLogger, 'runtime.onnx');
  const settings = { ...ONNX_DEFAULTS, ...opts.settings };
  let probe: Promise<Probe | Error> | undefined;
  let workers: OrtWorkers | undefined;

  const getProbe = (): Promise<Probe | Error> =>
    (probe ??= probeOrt(opts.providers ?? ['tensorrt', 'cuda', 'cpu']).catch((err: unknown) => err as Error));

  return {
    name: 'onnx',
    frameworks: ['onnx'],
    async availability(): Promise<Availability> {
      const p = await getProbe();
      if (p instanceof Error) return { available: false, reason: `onnxruntime-node could not be loaded: ${p.message}` };
      return { available: true, details: p.details };
    },
    async load(source: ModelSource): Promise<LoadedModel> {
      const p = await getProbe();
      if (p instanceof Error) {
        throw new OutpostError('RUNTIME_BACKEND_UNAVAILABLE', `the onnx backend is unavailable: ${p.message}`, {
          backend: 'onnx',
        });
      }
      const file = modelPath(source.dir, source.params.model_file);
      let bytes: Buffer;
      try {
        bytes = await readFile(file);
      } catch (err) {
        throw new OutpostError(
          'RUNTIME_MODEL_LOAD_FAILED',
          `cannot read the model file ${file}: ${(err as Error).message}`,
          { file },
        );
      }
      const sessionOptions = {
        ...sessionOptionsFor(settings),
        ...opts.sessionOptions,
        executionProviders: p.providers,
      };
      let session: Session;
      try {
        session = inThread(p.ort, await p.ort.InferenceSession.create(bytes, sessionOptions));
      } catch (err) {
        throw new OutpostError(
          'RUNTIME_MODEL_LOAD_FAILED',
          `onnxruntime could not load ${file}: ${(err as Error).message}`,
          { file },
        );
      }
      let inWorker = false;
      try {
        const inputs = describe(session.inputMetadata, file);
        const outputs = describe(session.outputMetadata, file);
        const batching = source.params.dynamic_batching;
        if (batching) checkBatchable(file, inputs, outputs);
        // Placement: a model that computes less than the hop to a worker and back costs (two
        // thread wake-ups and a copy of its inputs: 0.3-1 ms per request measured on a loaded
        // 2-core machine, docs/performance.md) is served faster on the event loop; a heavier one
        // moves to a worker, so that requests are parsed and answered while it computes. A
        // version from the models folder is placed from what earlier loads measured when that
        // settles it, so a restart does not run each model three times first (onnx-placement.ts).
        const memo =
          opts.placement && source.version
            ? {
                memo: opts.placement,
                key: `${source.version}/${source.params.model_file}:${bytes.length}:${optionsSignature(sessionOptions)}`,
              }
            : undefined;
        const { micros, measured } =
          settings.workers > 0
            ? await placementMicros(session, inputs, settings.workerMinMicros, memo)
            : { micros: 0, measured: false };
        if (settings.workers > 0 && micros >= settings.workerMinMicros) {
          workers ??= new OrtWorkers(settings.workers, log, {
            restarts: settings.workerRestarts,
            windowMs: settings.workerRestartWindowMs,
          });
          // A replacement worker re-reads the file (versions are immutable on disk) rather than
          // this process keeping a second copy of every model's bytes.
          const moved = await workers.load(bytes, sessionOptions, () => readFile(file));
          await session.release();
          session = moved;
          inWorker = true;
        }
        // In a worker, one run computing and one ready in its port, so the worker never waits
        // for the event loop between two runs; on the event loop itself, one at a time.
        const what = `model ${source.version ?? source.params.model_file}`;
        const parallel = inWorker ? 2 : 1;
        const queue = new RunQueue(what, parallel, settings.maxQueuedPerModel);
        const model = new OnnxModel(
          session,
          queue,
          inputs,
          outputs,
          batching ? { what, parallel, maxQueued: settings.maxQueuedPerModel, policy: batching, log } : undefined,
        );
        log.debug({ file, trialMicros: Math.round(micros), inWorker, measured }, 'placed');
        log.debug({ file, providers: p.providers, inputs: model.inputs }, 'loaded');
        return model;
      } catch (err) {
        await session.release().catch(() => undefined);
        throw err;
      }
    },
  };
}

async function probeOrt(wanted: Provider[]): Promise<Probe> {
  const ort = (await import('onnxruntime-node')) as OrtModule;
  const listed = ort.listSupportedBackends();
  // The binding's folder is where onnxruntime looks for provider libraries.
  const req = createRequire(import.meta.url);
  const bindingDir = join(
    dirname(req.resolve('onnxruntime-node')),
    '..',
    'bin',
    'napi-v6',
    process.platform,
    process.arch,
  );
  const providers: Provider[] = [];
  const unusable: Record<string, string> = {};
  for (const p of wanted) {
    const entry = listed.find((b) => b.name === p);
    if (p === 'cpu') {
      providers.push(p);
      continue;
    }
    if (!entry) {
      unusable[p] = 'not listed by this onnxruntime build';
      continue;
    }
    if (!existsSync(join(bindingDir, GPU_LIBS[p]))) {
      unusable[p] = `${GPU_LIBS[p]} is not installed beside the onnxruntime binding`;
      continue;
    }
    providers.push(p);
  }
  if (!providers.includes('cpu')) providers.push('cpu');
  return {
    ort,
    providers,
    details: { version: ort.env.versions.node, providers, listed: listed.map((b) => b.name), unusable },
  };
}

/** The session options that change a run's time, as a short stable string. */
function optionsSignature(o: Ort.InferenceSession.SessionOptions): string {
  const providers = (o.executionProviders ?? []).map((p) => (typeof p === 'string' ? p : p.name)).join('+');
  return `${o.intraOpNumThreads ?? 0}.${o.interOpNumThreads ?? 0}.${o.executionMode ?? ''}.${o.graphOptimizationLevel ?? ''}.${providers}`;
}

/** The model file must stay inside the version folder (the manifest parser checks this too). */
function modelPath(dir: string, file: string): string {
  const full = resolve(dir, file);
  const rel = relative(resolve(dir), full);
  if (rel.startsWith('..') || isAbsolute(rel)) {
    throw new OutpostError('RUNTIME_MODEL_LOAD_FAILED', `model_file ${file} resolves outside the model folder ${dir}`, {
      file,
    });
  }
  return full;
}

function describe(meta: readonly Ort.InferenceSession.ValueMetadata[], file: string): TensorInfo[] {
  return meta.map((m) => {
    if (!m.isTensor)
      throw new OutpostError(
        'RUNTIME_MODEL_LOAD_FAILED',
        `${file}: value "${m.name}" is not a tensor; Outpost serves tensor models only`,
        { file, name: m.name },
      );
    if (!isDType(m.type))
      throw new OutpostError(
        'RUNTIME_MODEL_LOAD_FAILED',
        `${file}: value "${m.name}" has dtype ${m.type}, which Outpost does not carry`,
        { file, name: m.name, dtype: m.type },
      );
    return { name: m.name, dtype: m.type, shape: m.shape.map((d) => (typeof d === 'number' && d > 0 ? d : null)) };
  });
}

/**
 * The least time of three runs on zeros (dynamic dimensions 1), in microseconds: the least, not
 * the median, because other processes on the device only ever make a run slower. Each run counts
 * the lesser of its wall time and the CPU time this process spent meanwhile: on a busy device the
 * wall time also counts the moments the run waited for a core (measured here: 10.7 ms for a model
 * that runs in 0.1 ms, three times in a row, during a parallel build), which would move a tiny
 * model to a worker; the CPU time does not, and where onnxruntime computes on several threads
 * the wall time is the lesser. Both also count other work of the event loop; the run's own
 * time (ownRunMicros) does not, and is the third measure. A model that cannot run on such an
 * input reports 0 and stays on the event loop (its smoke test will say why).
 */
async function trialMicros(session: Session, inputs: readonly TensorInfo[]): Promise<number> {
  const feeds: Record<string, Tensor> = {};
  for (const i of inputs) feeds[i.name] = allocate(i.dtype, concreteShape(i));
  let best = Number.POSITIVE_INFINITY;
  try {
    for (let k = 0; k < 3; k++) {
      const t = process.hrtime.bigint();
      const cpu = process.cpuUsage();
      const own = ownRunMicros(() => session.run(feedsOfOne(feeds)));
      await own.done;
      const used = process.cpuUsage(cpu);
      best = Math.min(best, Number(process.hrtime.bigint() - t) / 1e3, used.user + used.system, await own.micros);
    }
  } catch {
    return 0;
  }
  return best;
}

/**
 * The time of the run itself, without what else the event loop did while it waited. onnxruntime-
 * node runs a session synchronously inside a setImmediate callback, so a marker immediate queued
 * just before the call and one just after it are that callback's neighbours in node's queue:
 * their distance is the run. Wall and process CPU time both also count the other callbacks
 * queued meanwhile (at a start, the session creation of the model loading beside this one: a
 * few ms), which moved 0.1 ms models to a worker thread. Should the run not have finished
 * between the markers (onnxruntime computing elsewhere, or a worker session), this says
 * Infinity and the other measures stand.
 */
export function ownRunMicros(run: () => Promise<unknown>): { done: Promise<unknown>; micros: Promise<number> } {
  let start = 0n;
  let settled = false;
  setImmediate(() => {
    start = process.hrtime.bigint();
  });
  // Finished between the markers: after the first ran, before the second.
  const done = run().finally(() => {
    settled = start !== 0n;
  });
  const micros = new Promise<number>((resolve) => {
    setImmediate(() => resolve(settled ? Number(process.hrtime.bigint() - start) / 1e3 : Number.POSITIVE_INFINITY));
  });
  return { done, micros };
}

/**
 * The trial time that places a model: from the memo when it settles the placement (a least time
 * under the threshold; onnx-placement.ts says why that is safe), else measured now, recorded,
 * and combined with what the memo had.
 */
async function placementMicros(
  session: Session,
  inputs: readonly TensorInfo[],
  threshold: number,
  memo: { memo: PlacementMemo; key: string } | undefined,
): Promise<{ micros: number; measured: boolean }> {
  const known = memo ? await memo.memo.lookup(memo.key) : undefined;
  if (known !== undefined && known < threshold) return { micros: known, measured: false };
  const now = await trialMicros(session, inputs);
  // 0 means the trial could not run (the smoke test will say why): nothing to learn from it.
  if (memo && now > 0) memo.memo.record(memo.key, now);
  return { micros: known !== undefined && now > 0 ? Math.min(known, now) : now, measured: true };
}

/** A session wherever it runs: on this thread, or in a worker (onnx-workers.ts). */
type Session = Pick<WorkerSession, 'inputMetadata' | 'outputMetadata' | 'run' | 'release'> &
  Partial<Pick<WorkerSession, 'health' | 'onHealthChange'>>;

function inThread(ort: OrtModule, session: Ort.InferenceSession): Session {
  return {
    inputMetadata: session.inputMetadata,
    outputMetadata: session.outputMetadata,
    async run(inputs) {
      const feeds: Record<string, Ort.Tensor> = {};
      for (const [name, t] of Object.entries(inputs))
        feeds[name] = new ort.Tensor(t.dtype, joinParts(t) as never, t.shape);
      const out = await session.run(feeds);
      return {
        outputs: Object.fromEntries(
          Object.entries(out).map(([name, t]) => [name, { name, type: t.type, dims: t.dims, data: t.data }]),
        ),
      };
    },
    release: () => session.release(),
  };
}

class OnnxModel implements LoadedModel {
  readonly backend = 'onnx';
  private released = false;
  /** Present when the model batches (dynamic_batching); then `queue` is not used. */
  private readonly batcher: BatchQueue | undefined;

  constructor(
    private readonly session: Session,
    private readonly queue: RunQueue,
    readonly inputs: readonly TensorInfo[],
    readonly outputs: readonly TensorInfo[],
    batching?: Omit<BatchQueueOptions, 'exec'>,
  ) {
    this.batcher = batching ? new BatchQueue({ ...batching, exec: (feeds) => this.execute(feeds) }) : undefined;
  }

  get batches(): BatchStats | undefined {
    return this.batcher?.stats;
  }

  async run(inputs: Record<string, Tensor>): Promise<Record<string, Tensor>> {
    if (this.released)
      throw new OutpostError(
        'RUNTIME_MODEL_UNLOADED',
        'this model version was unloaded; retry to reach the active version',
      );
    validateInputs(this.inputs, inputs);
    const { outputs, release } = this.batcher
      ? await this.batcher.run(inputs)
      : await this.queue.run(() => this.execute(feedsOfOne(inputs)));
    return release ? lendOutputs(outputs, release) : outputs;
  }

  private async execute(feeds: Record<string, Feed>): Promise<Ran> {
    let ran: Awaited<ReturnType<Session['run']>>;
    try {
      ran = await this.session.run(feeds);
    } catch (err) {
      // The worker's own codes (RUNTIME_WORKER_EXITED, RUNTIME_WORKER_UNHEALTHY) pass through.
      if (err instanceof OutpostError) throw err;
      throw new OutpostError(
        'RUNTIME_INFERENCE_FAILED',
        `onnxruntime failed to run the model: ${(err as Error).message}`,
      );
    }
    const result: Record<string, Tensor> = {};
    for (const [name, t] of Object.entries(ran.outputs)) {
      if (!isDType(t.type)) {
        ran.release?.();
        throw new OutpostError(
          'RUNTIME_OUTPUT_UNEXPECTED',
          `output "${name}" has dtype ${t.type}, which Outpost does not carry`,
        );
      }
      result[name] = { dtype: t.type, shape: [...t.dims], data: t.data as Tensor['data'] };
    }
    return { outputs: result, ...(ran.release ? { release: ran.release } : {}) };
  }

  health(): ModelHealth | undefined {
    return this.session.health?.();
  }

  onHealthChange(listener: () => void): void {
    this.session.onHealthChange?.(listener);
  }

  async dispose(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.session.release();
  }
}
