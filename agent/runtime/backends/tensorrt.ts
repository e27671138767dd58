import { open, stat } from 'node:fs/promises';
import { extname, isAbsolute, relative, resolve } from 'node:path';
import { OutpostError } from '../../../protocol/errors/index.js';
import type { TrtDevice } from '../../../protocol/manifest-types.js';
import type { Availability, Backend, LoadedModel, ModelSource } from '../backend.js';
import { loadAddon, native, type AddonLoad } from './native-loader.js';
import { float32Info, NativeModel } from './native-model.js';
import type { NativeTensor } from './opencv-binding.js';
import { checkEngineDevice, checkEngineVersion } from './tensorrt-engine.js';
import { probeCapabilities } from '../../system/probe.js';

/**
 * The TensorRT backend (framework tensor-rt: `.trt`/`.bin` engines) over addons/tensorrt. Before
 * the engine reaches TensorRT, TypeScript checks the model JSON's `device` against this Jetson
 * and the engine header's TensorRT version against the library (tensorrt-engine.ts).
 * Not exercised on a Jetson yet: availability() never reports hardware: true.
 */
interface TrtEngine {
  run(inputs: NativeTensor[]): Promise<NativeTensor[]>;
  dispose(): void;
  info(): { name: string; input: boolean; shape: number[] }[];
}
interface TrtBinding {
  abi: number;
  load(path: string): Promise<TrtEngine>;
  version(): { library: number; headers: string; cudaRuntime: number; cudaDevices: number };
}

export interface TensorRtBackendOptions {
  binding?: AddonLoad<TrtBinding>;
  /** This device's id (from the capability probe); probed when absent. */
  device?: TrtDevice | null;
}

export function createTensorRtBackend(opts: TensorRtBackendOptions = {}): Backend {
  const addon = () => opts.binding ?? loadAddon<TrtBinding>('outpost_tensorrt');
  const device = async () =>
    opts.device !== undefined ? opts.device : ((await probeCapabilities()).jetson?.device ?? null);
  return {
    name: 'tensorrt',
    frameworks: ['tensor-rt'],
    async availability(): Promise<Availability> {
      const a = addon();
      if (!a.ok)
        return {
          available: false,
          reason: `TensorRT SDK not found when the addons were built, or not loadable here: ${a.reason}`,
        };
      const v = a.binding.version();
      if (v.cudaDevices < 1)
        return { available: false, reason: 'the TensorRT addon loaded but CUDA reports no GPU', details: v };
      return { available: true, details: { ...v, testedOnHardware: false } };
    },
    async load(source: ModelSource): Promise<LoadedModel> {
      const a = addon();
      if (!a.ok)
        throw new OutpostError('RUNTIME_BACKEND_UNAVAILABLE', `the tensorrt backend is unavailable: ${a.reason}`, {
          backend: 'tensorrt',
        });
      const file = await engineFile(source);
      checkEngineDevice(source.params.device, await device());
      const fh = await open(file, 'r');
      const head = Buffer.alloc(32);
      try {
        await fh.read(head, 0, 32, 0);
      } finally {
        await fh.close();
      }
      checkEngineVersion(head, a.binding.version().library, source.params.model_file);
      const engine = await native(() => a.binding.load(file));
      const io = engine.info();
      return new NativeModel(
        'tensorrt',
        engine,
        io.filter((t) => t.input).map(float32Info),
        io.filter((t) => !t.input).map(float32Info),
      );
    },
  };
}

async function engineFile(source: ModelSource): Promise<string> {
  const full = resolve(source.dir, source.params.model_file);
  const rel = relative(resolve(source.dir), full);
  if (rel.startsWith('..') || isAbsolute(rel))
    throw new OutpostError(
      'ADDON_MODEL_FILE_MISSING',
      `model_file ${source.params.model_file} resolves outside the model folder`,
      { file: source.params.model_file },
    );
  if (!['.trt', '.bin', '.engine', '.plan'].includes(extname(full).toLowerCase())) {
    throw new OutpostError(
      'ADDON_MODEL_MISMATCH',
      `model_file ${source.params.model_file}: tensor-rt expects a .trt or .bin engine`,
      { file: source.params.model_file },
    );
  }
  const st = await stat(full).catch(() => null);
  if (!st?.isFile() || st.size === 0)
    throw new OutpostError('ADDON_MODEL_FILE_MISSING', `model_file ${source.params.model_file} is missing or empty`, {
      file: source.params.model_file,
    });
  return full;
}
