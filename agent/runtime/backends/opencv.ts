import { OutpostError, toOutpostError } from '../../../protocol/errors/index.js';
import { silentLogger, type Logger, moduleLogger } from '../../../protocol/log.js';
import type { Availability, Backend, LoadedModel, ModelSource, Tensor, TensorInfo } from '../backend.js';
import { validateInputs } from '../tensors.js';
import { loadAddon, type AddonLoad } from './native-loader.js';
import type { NativeTensor, OpenCvBinding, OpenCvNet, OpenCvTarget } from './opencv-binding.js';
import { checkOpenCvFiles, type OpenCvFramework } from './opencv-files.js';

/**
 * The OpenCV DNN backend: Caffe, Darknet, TensorFlow, ENet/Torch and (as a fallback to
 * onnxruntime) ONNX through the native addon addons/opencv-dnn. TypeScript checks the files and
 * the inputs; the addon only reads the net and runs it off the JS thread.
 *
 * Invariants: a cv::dnn::Net must not run on two threads at once, so runs of one model are queued
 * here (the addon also locks, as a second line); dispose() waits for nothing and the addon frees
 * the net after the run in flight.
 */
export interface OpenCvBackendOptions {
  log?: Logger;
  /** Preferred target; 'auto' picks CUDA FP16 on a Jetson, CUDA elsewhere, CPU without CUDA. */
  target?: OpenCvTarget | 'auto';
  /** True on a Jetson (from the capability probe): FP16 is its fast path. */
  jetson?: boolean;
  /** Injected binding (tests) instead of the built addon. */
  binding?: AddonLoad<OpenCvBinding>;
}

export const OPENCV_FRAMEWORKS: readonly OpenCvFramework[] = ['caffe', 'darknet', 'tensorflow', 'enet', 'onnx'];

export function createOpenCvBackend(opts: OpenCvBackendOptions = {}): Backend {
  const log = moduleLogger(opts.log ?? silentLogger, 'runtime.opencv');
  const addon = (): AddonLoad<OpenCvBinding> => opts.binding ?? loadAddon<OpenCvBinding>('outpost_opencv_dnn');

  const chooseTarget = (b: OpenCvBinding): OpenCvTarget => {
    if (opts.target && opts.target !== 'auto') return opts.target;
    if (!b.buildInfo().cuda) return 'cpu';
    return opts.jetson ? 'cuda_fp16' : 'cuda';
  };

  return {
    name: 'opencv',
    frameworks: OPENCV_FRAMEWORKS,
    async availability(): Promise<Availability> {
      const a = addon();
      if (!a.ok) return { available: false, reason: a.reason };
      try {
        const info = a.binding.buildInfo();
        return {
          available: true,
          // CPU here; CUDA only when this OpenCV was built with it (and then it runs for real).
          hardware: info.cuda,
          details: { opencv: info.version, cuda: info.cuda, target: chooseTarget(a.binding), addon: a.path },
        };
      } catch (err) {
        return {
          available: false,
          reason: `the OpenCV addon loaded but failed to report its build: ${(err as Error).message}`,
        };
      }
    },
    async load(source: ModelSource): Promise<LoadedModel> {
      const a = addon();
      if (!a.ok)
        throw new OutpostError('RUNTIME_BACKEND_UNAVAILABLE', `the opencv backend is unavailable: ${a.reason}`, {
          backend: 'opencv',
        });
      const files = await checkOpenCvFiles(source.dir, source.params);
      const framework = source.params.framework_type;
      const target = chooseTarget(a.binding);
      let net: OpenCvNet;
      try {
        net = await a.binding.load({ framework, model: files.model, config: files.config, target });
      } catch (err) {
        throw toOutpostError(err);
      }
      const [w, h] = source.params.size;
      const input: TensorInfo = { name: files.inputName ?? 'data', dtype: 'float32', shape: [1, 3, h, w] };
      const names = source.params.output_layer_names?.length
        ? source.params.output_layer_names
        : net.info().outputNames;
      // One run on zeros learns the output shapes and proves the declared size fits the net.
      let outputs: TensorInfo[];
      try {
        const probe = await net.forward(
          [{ name: input.name, shape: [1, 3, h, w], data: new Float32Array(3 * h * w) }],
          names,
        );
        outputs = probe.map((t) => ({ name: t.name, dtype: 'float32', shape: t.shape }));
      } catch (err) {
        net.dispose();
        const e = toOutpostError(err);
        throw new OutpostError(
          'ADDON_MODEL_INVALID',
          `the ${framework} model loaded but does not run on a [1,3,${h},${w}] input (size in alwaysai.model.json is [${w},${h}]): ${e.message}`,
          { framework, size: [w, h] },
        );
      }
      log.debug({ framework, model: files.model, target: net.info().target, outputs }, 'loaded');
      return new OpenCvModel(net, [input], outputs);
    },
  };
}

class OpenCvModel implements LoadedModel {
  readonly backend = 'opencv';
  private disposed = false;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly net: OpenCvNet,
    readonly inputs: readonly TensorInfo[],
    readonly outputs: readonly TensorInfo[],
  ) {}

  run(inputs: Record<string, Tensor>): Promise<Record<string, Tensor>> {
    if (this.disposed)
      return Promise.reject(
        new OutpostError(
          'RUNTIME_MODEL_UNLOADED',
          'this model version was unloaded; retry to reach the active version',
        ),
      );
    try {
      validateInputs(this.inputs, inputs);
    } catch (err) {
      return Promise.reject(err);
    }
    const feed: NativeTensor[] = this.inputs.map((i) => {
      const t = inputs[i.name]!;
      return { name: i.name, shape: t.shape, data: t.data as Float32Array };
    });
    const names = this.outputs.map((o) => o.name);
    const next = this.queue.then(async () => {
      if (this.disposed)
        throw new OutpostError(
          'RUNTIME_MODEL_UNLOADED',
          'this model version was unloaded; retry to reach the active version',
        );
      let out: NativeTensor[];
      try {
        out = await this.net.forward(feed, names);
      } catch (err) {
        throw toOutpostError(err);
      }
      const result: Record<string, Tensor> = {};
      for (const t of out) result[t.name] = { dtype: 'float32', shape: t.shape, data: t.data };
      return result;
    });
    // The queue must survive a failed run; callers get the failure through `next`.
    this.queue = next.catch(() => undefined);
    return next;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    this.net.dispose();
  }
}
