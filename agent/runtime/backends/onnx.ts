import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve, isAbsolute } from 'node:path';
import type * as Ort from 'onnxruntime-node';
import { OutpostError } from '../../../protocol/errors/index.js';
import { silentLogger, type Logger, moduleLogger } from '../../../protocol/log.js';
import type { Availability, Backend, LoadedModel, ModelSource, Tensor, TensorInfo } from '../backend.js';
import { isDType, validateInputs } from '../tensors.js';

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
  /** Passed to every session (merged over the defaults); tests use the same to compare. */
  sessionOptions?: Ort.InferenceSession.SessionOptions;
}

/**
 * The options every session gets unless overridden; exported so tests can reproduce a session.
 * Thread-pool spinning is off: by default onnxruntime's worker threads busy-wait after each run
 * for the next one, which on a device where the agent shares a few cores with the apps that call
 * it takes those cores from the apps (and from the agent's own event loop). Measured here: the
 * conv net of bench/_convnet.ts burned 37 ms of CPU per idle 300 ms with spinning, 0.5 without,
 * and ran faster without it once another process competed for the cores (docs/performance.md).
 */
export const DEFAULT_SESSION_OPTIONS: Ort.InferenceSession.SessionOptions = {
  graphOptimizationLevel: 'all',
  extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
};

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
  let probe: Promise<Probe | Error> | undefined;

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
      const sessionOptions = { ...DEFAULT_SESSION_OPTIONS, ...opts.sessionOptions, executionProviders: p.providers };
      let session: Ort.InferenceSession;
      try {
        session = await p.ort.InferenceSession.create(bytes, sessionOptions);
      } catch (err) {
        throw new OutpostError(
          'RUNTIME_MODEL_LOAD_FAILED',
          `onnxruntime could not load ${file}: ${(err as Error).message}`,
          { file },
        );
      }
      try {
        const model = new OnnxModel(
          p.ort,
          session,
          describe(session.inputMetadata, file),
          describe(session.outputMetadata, file),
        );
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

class OnnxModel implements LoadedModel {
  readonly backend = 'onnx';
  private released = false;

  constructor(
    private readonly ort: OrtModule,
    private readonly session: Ort.InferenceSession,
    readonly inputs: readonly TensorInfo[],
    readonly outputs: readonly TensorInfo[],
  ) {}

  async run(inputs: Record<string, Tensor>): Promise<Record<string, Tensor>> {
    if (this.released)
      throw new OutpostError(
        'RUNTIME_MODEL_UNLOADED',
        'this model version was unloaded; retry to reach the active version',
      );
    validateInputs(this.inputs, inputs);
    const feeds: Record<string, Ort.Tensor> = {};
    for (const [name, t] of Object.entries(inputs))
      feeds[name] = new this.ort.Tensor(t.dtype, t.data as never, t.shape);
    let out: Ort.InferenceSession.ReturnType;
    try {
      out = await this.session.run(feeds);
    } catch (err) {
      throw new OutpostError(
        'RUNTIME_INFERENCE_FAILED',
        `onnxruntime failed to run the model: ${(err as Error).message}`,
      );
    }
    const result: Record<string, Tensor> = {};
    for (const [name, t] of Object.entries(out)) {
      if (!isDType(t.type))
        throw new OutpostError(
          'RUNTIME_OUTPUT_UNEXPECTED',
          `output "${name}" has dtype ${t.type}, which Outpost does not carry`,
        );
      result[name] = { dtype: t.type, shape: [...t.dims], data: t.data as Tensor['data'] };
    }
    return result;
  }

  async dispose(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.session.release();
  }
}
