import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { OutpostError } from '../../protocol/errors/index.js';
import { silentLogger, type Logger, moduleLogger } from '../../protocol/log.js';
import { MODEL_JSON, parseColorsFile, parseModelManifest } from '../../protocol/manifest.js';
import type { ModelManifest, ModelParameters } from '../../protocol/manifest-types.js';
import type { LoadedModel, Tensor, TensorInfo } from './backend.js';
import { postprocess, type PostOptions, type PredictResult } from './postprocess/index.js';
import { preprocess, type RawFrame } from './preprocess.js';
import type { BackendRegistry } from './registry.js';
import { concreteShape, validateInputs } from './tensors.js';

/**
 * One loaded model version: its manifest, labels, colors and backend handle.
 *
 *   ModelVersion.load(dir, {registry, log?, backend?})   reads alwaysai.model.json, loads the backend
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

  /** Output names in the order post-processing reads them: output_layer_names when given. */
  get outputOrder(): string[] {
    const names = this.params.output_layer_names;
    return names && names.length > 0 ? names : this.model.outputs.map((o) => o.name);
  }

  static async load(
    dir: string,
    opts: { registry: BackendRegistry; log?: Logger; backend?: string },
  ): Promise<ModelVersion> {
    const log = moduleLogger(opts.log ?? silentLogger, 'runtime.model');
    const manifest = await readManifest(dir);
    const p = manifest.model_parameters;
    const labels = p.label_file ? await readLabels(dir, p.label_file) : [];
    const colors = p.colors_file ? parseColorsFile(await readText(dir, p.colors_file), p.colors_file) : undefined;
    const backend = opts.backend ? await opts.registry.get(opts.backend) : await opts.registry.select(p.framework_type);
    const model = await backend.load({ dir, params: p });
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
    const t0 = performance.now();
    const outputs = await this.model.run(inputs);
    return { outputs, duration: (performance.now() - t0) / 1000 };
  }

  /** Image bytes (JPEG/PNG) or a raw frame -> the typed result of the model's purpose. */
  async predict(image: Uint8Array | RawFrame, opts: PostOptions = {}): Promise<PredictResult> {
    const p = this.params;
    const input = this.imageInput();
    const { tensor, geometry } = await preprocess(image, {
      size: p.size,
      mean: p.mean,
      scalefactor: p.scalefactor,
      swaprb: p.swaprb,
      crop: p.crop,
    });
    const { outputs, duration } = await this.infer({ [input.name]: tensor });
    const order = this.outputOrder;
    for (const n of order) {
      if (!outputs[n])
        throw new OutpostError(
          'RUNTIME_OUTPUT_UNEXPECTED',
          `output_layer_names names "${n}" but the model has outputs ${Object.keys(outputs).join(', ')}`,
          { output: n },
        );
    }
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
      },
      opts,
    );
  }

  /**
   * The activation gate's trial run: a synthetic mid-gray frame of the model's own input size goes
   * through pre-processing, the backend and post-processing, so a model whose input size or
   * output layout does not match its JSON never becomes active. A model with several inputs
   * cannot take an image: one run on zero tensors proves it executes.
   */
  async smokeTest(): Promise<void> {
    try {
      if (this.model.inputs.length !== 1) {
        const feeds = Object.fromEntries(this.model.inputs.map((i) => [i.name, zeros(i)]));
        await this.infer(feeds);
        return;
      }
      const [w, h] = this.params.size;
      await this.predict({
        width: w,
        height: h,
        channels: 3,
        format: 'bgr',
        data: new Uint8Array(w * h * 3).fill(127),
      });
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

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.model.dispose();
    this.log.info({ model: this.id, dir: this.dir }, 'model unloaded');
  }

  private imageInput(): TensorInfo {
    const [input] = this.model.inputs;
    const [w, h] = this.params.size;
    if (this.model.inputs.length !== 1 || !input || input.dtype !== 'float32' || input.shape.length !== 4) {
      throw new OutpostError(
        'RUNTIME_INPUT_INVALID',
        `${this.id} does not take one float32 NCHW image; use infer with tensors`,
        { inputs: this.model.inputs },
      );
    }
    const fits = [1, 3, h, w].every((d, i) => input.shape[i] === null || input.shape[i] === d);
    if (!fits) {
      throw new OutpostError(
        'RUNTIME_INPUT_INVALID',
        `${this.id}: size [${w},${h}] in ${MODEL_JSON} does not fit the network input ${JSON.stringify(input.shape)}; fix "size"`,
        { size: [w, h], shape: input.shape },
      );
    }
    return input;
  }
}

function zeros(info: TensorInfo): Tensor {
  const shape = concreteShape(info);
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
