import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { OutpostError } from '../../protocol/errors/index.js';
import { silentLogger, type Logger, moduleLogger } from '../../protocol/log.js';
import { MODEL_JSON, parseModelManifest } from '../../protocol/manifest.js';
import { parseColorsFile } from '../../protocol/colors-file.js';
import type { ModelManifest, ModelParameters } from '../../protocol/manifest-types.js';
import type { BatchStats, LoadedModel, ModelHealth, Tensor, TensorInfo } from './backend.js';
import { type ImageInput, resolveImageInput, toModelInput } from './input-layout.js';
import { prepareInput } from './prepare.js';
import { type ResolvedLayout, resolveOutputLayout } from './postprocess/layouts.js';
import { postprocess, type PostOptions, type PredictResult } from './postprocess/index.js';
import { type BlobParams, blobFromFrame, type RawFrame } from './preprocess.js';
import type { BackendRegistry } from './registry.js';
import { concreteShape, validateInputs } from './tensors.js';

/**
 * What /predict can do with a version, decided by its smoke test: `results` (typed results, the
 * input and output layouts it uses and how each was chosen) or `raw-tensors` (the model runs and
 * serves KServe inference, but its input is not one image or its outputs cannot be read; the
 * reason says what was found and what to set).
 */
export type Serving =
  | {
      mode: 'results';
      input: Pick<ImageInput, 'name' | 'layout' | 'dtype' | 'shape' | 'source'>;
      output: ResolvedLayout;
    }
  | { mode: 'raw-tensors'; reason: { code: string; message: string } };

/**
 * One loaded model version: its manifest, labels, colors and backend handle.
 *
 *   ModelVersion.load(dir, {registry, log?, backend?, version?})   reads alwaysai.model.json, loads
 *                                       the backend (`version`: "<id>@<v>" of a models-folder version)
 *   version.smokeTest()                 the activation gate's trial run on a synthetic input
 *   version.infer(tensors)              raw tensors in, raw tensors out, with duration (s)
 *   version.predict(image | frame, o)   pre-process, infer, post-process -> typed result
 *   version.dispose()                   idempotent; only the Runtime calls it, after the last request
 */
export interface InferOutput {
  outputs: Record<string, Tensor>;
  duration: number;
}

export class ModelVersion {
  private disposed = false;
  private state: Serving | undefined;
  private input: ImageInput | undefined;

  private constructor(
    private folder: string,
    readonly manifest: ModelManifest,
    readonly labels: string[],
    readonly colors: [number, number, number][] | undefined,
    private readonly model: LoadedModel,
    private readonly log: Logger,
  ) {}

  /** The version folder; moves from staging to versions/<v> when the store activates it. */
  get dir(): string {
    return this.folder;
  }
  relocate(dir: string): void {
    this.folder = dir;
  }
  get id(): string {
    return this.manifest.id;
  }
  get params(): ModelParameters {
    return this.manifest.model_parameters;
  }
  get backend(): string {
    return this.model.backend;
  }
  get inputs(): readonly TensorInfo[] {
    return this.model.inputs;
  }
  get outputs(): readonly TensorInfo[] {
    return this.model.outputs;
  }
  /** How many runs had each batch size, when the model batches (dynamic_batching). */
  get batches(): BatchStats | undefined {
    return this.model.batches;
  }

  /** Output names in the order post-processing reads them: output_layer_names when given. */
  get outputOrder(): string[] {
    const names = this.params.output_layer_names;
    return names && names.length > 0 ? names : this.model.outputs.map((o) => o.name);
  }

  static async load(
    dir: string,
    opts: { registry: BackendRegistry; log?: Logger; backend?: string; version?: string },
  ): Promise<ModelVersion> {
    const log = moduleLogger(opts.log ?? silentLogger, 'runtime.model');
    const manifest = await readManifest(dir);
    const p = manifest.model_parameters;
    const labels = p.label_file ? await readLabels(dir, p.label_file) : [];
    const colors = p.colors_file ? parseColorsFile(await readText(dir, p.colors_file), p.colors_file) : undefined;
    const backend = opts.backend ? await opts.registry.get(opts.backend) : await opts.registry.select(p.framework_type);
    const model = await backend.load({ dir, params: p, ...(opts.version ? { version: opts.version } : {}) });
    if (p.dynamic_batching && !model.batches) {
      await model.dispose().catch(() => undefined);
      throw new OutpostError(
        'RUNTIME_MODEL_LOAD_FAILED',
        `${manifest.id}: model_parameters.dynamic_batching is set, but the ${backend.name} backend does not batch (only the onnx backend does); remove dynamic_batching`,
        { model: manifest.id, backend: backend.name },
      );
    }
    log.info({ model: manifest.id, dir, backend: backend.name }, 'model loaded');
    return new ModelVersion(dir, manifest, labels, colors, model, log);
  }

  async infer(inputs: Record<string, Tensor>): Promise<InferOutput> {
    if (this.disposed)
      throw new OutpostError(
        'RUNTIME_MODEL_UNLOADED',
        `${this.id} (${this.dir}) was unloaded; retry to reach the active version`,
      );
    validateInputs(this.model.inputs, inputs);
    // hrtime, not performance.now(): the first use of `performance` loads perf_hooks, and the
    // smoke tests of a start-up would be that first use (docs/runtime.md, "Start-up").
    const t0 = process.hrtime.bigint();
    const outputs = await this.model.run(inputs);
    return { outputs, duration: Number(process.hrtime.bigint() - t0) / 1e9 };
  }

  /** Why the backend cannot run this version any more (a worker that kept dying); undefined while it can. */
  get health(): ModelHealth | undefined {
    return this.model.health?.();
  }

  onHealthChange(listener: () => void): void {
    this.model.onHealthChange?.(listener);
  }

  /** Set by the smoke test; undefined before it ran. */
  get serving(): Serving | undefined {
    return this.state;
  }

  private get blobParams(): BlobParams {
    const p = this.params;
    return { size: p.size, mean: p.mean, scalefactor: p.scalefactor, swaprb: p.swaprb, crop: p.crop };
  }

  /** Image bytes (JPEG/PNG) or a raw frame -> the typed result of the model's purpose. */
  async predict(image: Uint8Array | RawFrame, opts: PostOptions = {}): Promise<PredictResult> {
    if (!this.state) await this.smokeTest();
    const state = this.state!;
    if (state.mode === 'raw-tensors') {
      throw new OutpostError(
        'RUNTIME_RAW_TENSORS_ONLY',
        `${this.id} serves raw tensors only: ${state.reason.message}. Until then use KServe inference (POST /v2/models/${this.id}/infer)`,
        { model: this.id, cause: state.reason.code },
      );
    }
    const input = this.input!;
    const prepared = await prepareInput(image, {
      mode: this.params.decode ?? 'auto',
      params: this.blobParams,
      letterbox: state.output.letterbox,
      log: this.log,
    });
    const { outputs, duration } = await this.infer({ [input.name]: toModelInput(prepared.tensor, input) });
    // Only after a run that settled: a run that failed (a timeout) may still be reading it.
    prepared.release();
    return this.post(outputs, duration, prepared.geometry, state.output, opts);
  }

  private post(
    outputs: Record<string, Tensor>,
    duration: number,
    geometry: ReturnType<typeof blobFromFrame>['geometry'],
    layout: ResolvedLayout | undefined,
    opts: PostOptions,
  ): PredictResult {
    const p = this.params;
    const order = this.outputOrder;
    for (const n of order) {
      if (!outputs[n])
        throw new OutpostError(
          'RUNTIME_OUTPUT_UNEXPECTED',
          `output_layer_names names "${n}" but the model has outputs ${Object.keys(outputs).join(', ')}; fix "output_layer_names"`,
          { output: n },
        );
    }
    const resolved =
      layout ??
      resolveOutputLayout({
        purpose: p.purpose,
        framework: p.framework_type,
        params: p,
        outputs,
        outputOrder: order,
        labels: this.labels,
        inputLayout: this.input?.layout ?? 'NCHW',
      });
    return postprocess(
      {
        outputs,
        outputOrder: order,
        labels: this.labels,
        colors: this.colors,
        geometry,
        softmax: p.softmax,
        framework: p.framework_type,
        duration,
        purpose: p.purpose,
        layout: resolved.layout,
      },
      opts,
    );
  }

  /**
   * The gate before activation: the model runs once on a synthetic tensor of its own declared
   * inputs (for an image model, a mid-gray frame of its input size through the pre-processing
   * and the layout it takes). A model that does not run, or whose `size` contradicts its input,
   * never becomes active. A model that runs but whose input is not one image, or whose outputs
   * post-processing cannot read, is still served, as raw tensors only: KServe inference works,
   * /predict answers RUNTIME_RAW_TENSORS_ONLY with the reason.
   */
  async smokeTest(): Promise<void> {
    try {
      const img = resolveImageInput(this.model.inputs, this.params);
      if ('reason' in img) {
        const feeds = Object.fromEntries(this.model.inputs.map((i) => [i.name, zeros(i, this.params.size)]));
        await this.infer(feeds);
        this.rawOnly('RUNTIME_INPUT_INVALID', `${img.reason}; set "input_format" (NCHW or NHWC) if it is an image`);
        return;
      }
      const [w, h] = this.params.size;
      const frame: RawFrame = {
        width: w,
        height: h,
        channels: 3,
        format: 'bgr',
        data: new Uint8Array(w * h * 3).fill(127),
      };
      const { tensor, geometry } = blobFromFrame(frame, this.blobParams);
      const { outputs, duration } = await this.infer({ [img.name]: toModelInput(tensor, img) });
      this.input = img;
      const { name, layout, dtype, shape, source } = img;
      try {
        const p = this.params;
        const output = resolveOutputLayout({
          purpose: p.purpose,
          framework: p.framework_type,
          params: p,
          outputs,
          outputOrder: this.outputOrder,
          labels: this.labels,
          inputLayout: img.layout,
        });
        this.post(outputs, duration, geometry, output, {});
        this.state = { mode: 'results', input: { name, layout, dtype, shape, source }, output };
        this.log.info({ model: this.id, input: this.state.input, output }, 'layouts chosen');
      } catch (err) {
        if (!(err instanceof OutpostError) || err.code !== 'RUNTIME_OUTPUT_UNEXPECTED') throw err;
        this.rawOnly(err.code, err.message);
      }
    } catch (err) {
      const e = err as OutpostError;
      throw new OutpostError(
        'RUNTIME_SMOKE_TEST_FAILED',
        `${this.id}: the trial inference failed (${e.code ?? 'error'}: ${e.message}); the version was not activated`,
        { model: this.id, cause: e.code },
        { cause: err },
      );
    }
  }

  private rawOnly(code: string, message: string): void {
    this.state = { mode: 'raw-tensors', reason: { code, message } };
    this.log.warn({ model: this.id, code, reason: message }, 'serving raw tensors only');
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.model.dispose();
    this.log.info({ model: this.id, dir: this.dir }, 'model unloaded');
  }
}

/** Zeros of a declared input; dynamic dims are 1, or the JSON's size for a 4-D input's spatial axes. */
function zeros(info: TensorInfo, size: [number, number]): Tensor {
  const shape = concreteShape(info);
  if (info.shape.length === 4) {
    const nchw = info.shape[1] === 3;
    const [hAxis, wAxis] = nchw ? [2, 3] : [1, 2];
    if (info.shape[hAxis] === null) shape[hAxis] = size[1];
    if (info.shape[wAxis] === null) shape[wAxis] = size[0];
  }
  const n = shape.reduce((a, b) => a * b, 1);
  const data =
    info.dtype === 'float32'
      ? new Float32Array(n)
      : info.dtype === 'int64'
        ? new BigInt64Array(n)
        : info.dtype === 'int32'
          ? new Int32Array(n)
          : info.dtype === 'int8'
            ? new Int8Array(n)
            : info.dtype === 'float16'
              ? new Uint16Array(n)
              : new Uint8Array(n);
  return { dtype: info.dtype, shape, data };
}

async function readText(dir: string, file: string): Promise<string> {
  try {
    return await readFile(join(dir, file), 'utf8');
  } catch (err) {
    throw new OutpostError('RUNTIME_LABELS_INVALID', `cannot read ${file} in ${dir}: ${(err as Error).message}`, {
      file,
    });
  }
}

async function readLabels(dir: string, file: string): Promise<string[]> {
  const lines = (await readText(dir, file)).split(/\r?\n/).map((l) => l.trim());
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

export async function readManifest(dir: string): Promise<ModelManifest> {
  let text: string;
  try {
    text = await readFile(join(dir, MODEL_JSON), 'utf8');
  } catch {
    throw new OutpostError('MODEL_JSON_MISSING', `there is no readable ${MODEL_JSON} in ${dir}`, { dir });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new OutpostError(
      'MODEL_JSON_SYNTAX',
      `${join(dir, MODEL_JSON)} is not valid JSON: ${(err as Error).message}`,
      { dir },
    );
  }
  return parseModelManifest(json);
}
