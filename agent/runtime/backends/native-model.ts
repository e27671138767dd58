import { OutpostError } from '../../../protocol/errors/index.js';
import type { LoadedModel, Tensor, TensorInfo } from '../backend.js';
import { validateInputs } from '../tensors.js';
import { native } from './native-loader.js';
import type { NativeTensor } from './opencv-binding.js';

/** What every float32 engine addon (TensorRT, HailoRT, OpenVINO, OpenCV DNN) hands back from load. */
export interface NativeEngine {
  run(inputs: NativeTensor[]): Promise<NativeTensor[]>;
  dispose(): void;
}

const unloaded = () =>
  new OutpostError('RUNTIME_MODEL_UNLOADED', 'this model version was unloaded; retry to reach the active version');

/** The float32 tensor description the addons report for each input and output. */
export const float32Info = (t: { name: string; shape: number[] }): TensorInfo => ({
  name: t.name,
  dtype: 'float32',
  shape: t.shape,
});

/**
 * A LoadedModel over any float32 native engine: validates inputs, maps names, turns addon
 * failures into catalog codes, and queues runs so one engine never runs on two threads at once
 * (cv::dnn::Net, a TensorRT execution context and a HailoRT vstream are not thread-safe; the
 * addons lock as a second line). dispose() waits for nothing: the addon frees the engine after
 * the run in flight, and runs queued behind it answer RUNTIME_MODEL_UNLOADED.
 */
export class NativeModel implements LoadedModel {
  private disposed = false;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly backend: string,
    private readonly engine: NativeEngine,
    readonly inputs: readonly TensorInfo[],
    readonly outputs: readonly TensorInfo[],
  ) {}

  run(inputs: Record<string, Tensor>): Promise<Record<string, Tensor>> {
    if (this.disposed) return Promise.reject(unloaded());
    try {
      validateInputs(this.inputs, inputs);
    } catch (err) {
      return Promise.reject(err);
    }
    const feed: NativeTensor[] = this.inputs.map((i) => ({
      name: i.name,
      shape: inputs[i.name]!.shape,
      data: inputs[i.name]!.data as Float32Array,
    }));
    const next = this.queue.then(async () => {
      if (this.disposed) throw unloaded();
      const out = await native(() => this.engine.run(feed));
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
    this.engine.dispose();
  }
}
