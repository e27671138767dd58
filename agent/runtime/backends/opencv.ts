import { OutpostError, toOutpostError } from '../../../protocol/errors/index.js';
import { silentLogger, type Logger, moduleLogger } from '../../../protocol/log.js';
import type { Availability, Backend, LoadedModel, ModelSource, TensorInfo } from '../backend.js';
import { loadAddon, type AddonLoad } from './native-loader.js';
import { NativeModel } from './native-model.js';
import type { NativeTensor, OpenCvBinding, OpenCvNet, OpenCvTarget } from './opencv-binding.js';
import { checkOpenCvFiles, type OpenCvFramework } from './opencv-files.js';

/**
 * The OpenCV DNN backend: Caffe, Darknet, TensorFlow, ENet/Torch and (as a fallback to
 * onnxruntime) ONNX through the native addon addons/opencv-dnn. TypeScript checks the files and
 * the inputs; the addon only reads the net and runs it off the JS thread.
 *
 * A cv::dnn::Net must not run on two threads at once: NativeModel queues one model's runs.
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
      const engine = { run: (feed: NativeTensor[]) => net.forward(feed, names), dispose: () => net.dispose() };
      return new NativeModel('opencv', engine, [input], outputs);
    },
  };
}
