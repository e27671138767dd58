import type { Framework, ModelParameters, VersionFile } from '../../protocol/manifest-types.js';

/**
 * The contract between the runtime and every inference backend (onnxruntime-node, the OpenCV DNN
 * addon, TensorRT, HailoRT, OpenVINO). TypeScript owns validation, pre- and post-processing and
 * policy; a backend owns only loading a model and running tensors through it.
 *
 * Invariants every backend keeps:
 * - availability() never throws: an absent SDK, library or device is `{available: false, reason}`.
 * - load() validates the files and throws OutpostError with a catalog code (never crashes).
 * - run() may be called concurrently; the backend serialises internally if its engine must.
 * - dispose() is idempotent; run() after dispose() rejects with a code.
 */
export type DType = 'float32' | 'float16' | 'uint8' | 'int8' | 'int32' | 'int64' | 'bool';

export type TensorData = Float32Array | Uint8Array | Int8Array | Int32Array | BigInt64Array | Uint16Array;

export interface Tensor {
  dtype: DType;
  /** Row-major (C order) dimensions. */
  shape: number[];
  data: TensorData;
}

export interface TensorInfo {
  name: string;
  dtype: DType;
  /** null for a dynamic dimension. */
  shape: (number | null)[];
}

/** Why a loaded model cannot serve any more (a catalog code and what to do); absent while it can. */
export interface ModelHealth {
  code: string;
  message: string;
}

export interface LoadedModel {
  readonly backend: string;
  readonly inputs: readonly TensorInfo[];
  readonly outputs: readonly TensorInfo[];
  run(inputs: Record<string, Tensor>): Promise<Record<string, Tensor>>;
  dispose(): Promise<void>;
  /**
   * Backends whose engine can fail after load (the ONNX worker threads: onnx-workers.ts) say so
   * here; the runtime shows it in /v2/health/ready, the model's /ready and the reported state.
   */
  health?(): ModelHealth | undefined;
  onHealthChange?(listener: () => void): void;
  /**
   * Present when the backend runs this model's waiting requests together (dynamic_batching in
   * the model JSON; the ONNX backend's batch-queue.ts). A backend that does not batch leaves it
   * absent, and the runtime then refuses a model JSON that asks for batching.
   */
  readonly batches?: BatchStats;
}

/** What /metrics shows of a batching model: how many runs had each batch size (first dimension). */
export interface BatchStats {
  readonly maxBatchSize: number;
  readonly runs: ReadonlyMap<number, number>;
}

/**
 * A backend may lend its outputs' memory (onnx-workers.ts: a pooled buffer that went to a worker
 * thread and back). Whoever is done with every view of a run's outputs, including any write of
 * them to a socket, calls releaseOutputs(outputs) so the memory is reused; a caller that never
 * does simply leaves it to the GC. Calling it twice, or on outputs that lend nothing, is harmless.
 */
const RELEASE = Symbol('outpost.releaseOutputs');

export function lendOutputs(outputs: Record<string, Tensor>, release: () => void): Record<string, Tensor> {
  let done = false;
  Object.defineProperty(outputs, RELEASE, {
    value: () => {
      if (done) return;
      done = true;
      release();
    },
  });
  return outputs;
}

export function releaseOutputs(outputs: Record<string, Tensor>): void {
  (outputs as { [RELEASE]?: () => void })[RELEASE]?.();
}

export interface ModelSource {
  /** The folder that holds the version's files. */
  dir: string;
  params: ModelParameters;
  files?: readonly VersionFile[];
  /**
   * `<id>@<version>` when the folder is a version from the models folder: published versions are
   * immutable, so a backend may key what it learnt of these files by it (onnx-placement.ts).
   * Absent for any other folder.
   */
  version?: string;
}

export interface Availability {
  available: boolean;
  /** Why not, in words an operator can act on (missing library, no device, not built). */
  reason?: string;
  /** Versions, devices, build options: reported in the device's capabilities. */
  details?: Record<string, unknown>;
  /** True only when it ran on the real engine/hardware here; never true for a simulation. */
  hardware?: boolean;
}

export interface Backend {
  readonly name: string;
  readonly frameworks: readonly Framework[];
  availability(): Promise<Availability>;
  load(source: ModelSource): Promise<LoadedModel>;
}
