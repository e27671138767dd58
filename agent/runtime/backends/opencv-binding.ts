/**
 * The TypeScript face of addons/opencv-dnn/opencv_dnn.cc. Every method that touches a model is
 * asynchronous (a promise; the work runs off the JS thread); buildInfo() and dispose() are
 * synchronous. Rejections carry {code, message} with codes from the error catalog.
 */
export interface NativeTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

export interface OpenCvNet {
  /** Runs the net. Inputs are borrowed, not copied: do not write them until the promise settles. */
  forward(inputs: NativeTensor[], outputNames?: string[]): Promise<NativeTensor[]>;
  /** Drops the net; a forward already running finishes first. Idempotent. */
  dispose(): void;
  info(): { outputNames: string[]; backend: string; target: string };
}

export interface OpenCvBuildInfo {
  version: string;
  buildInformation: string;
  /** [cv::dnn::Backend, cv::dnn::Target] pairs this OpenCV can run. */
  backendTargets: [number, number][];
  cuda: boolean;
}

export type OpenCvTarget = 'cpu' | 'cuda' | 'cuda_fp16';

export interface OpenCvBinding {
  abi: number;
  load(spec: { framework: string; model: string; config?: string; target?: OpenCvTarget }): Promise<OpenCvNet>;
  buildInfo(): OpenCvBuildInfo;
  /** Resolves null after a round trip through the worker pool: the call-overhead baseline. */
  /** An async call that does nothing; `viaPool` forces the thread-pool hop (no inline fast path). */
  noop(viaPool?: boolean): Promise<null>;
}
