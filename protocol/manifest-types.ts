import type { DynamicBatching } from './manifest-batching.js';

/**
 * The types of `alwaysai.model.json`, the contract of the seed document (Working with Models).
 *
 * The file has the seed's catalog fields at the top level and the model's parameters under
 * `model_parameters`, as the aai CLI writes it. The parser (protocol/manifest.ts) also accepts
 * the parameter fields flat at the top level, since the seed's table lists them flat.
 */
export const FRAMEWORKS = [
  'tensorflow',
  'caffe',
  'dldt',
  'enet',
  'darknet',
  'onnx',
  'tensor-rt',
  'myriad',
  'hailo',
] as const;
export type Framework = (typeof FRAMEWORKS)[number];

export const PURPOSES = ['Classification', 'ObjectDetection', 'PoseEstimation', 'SemanticSegmentation'] as const;
export type Purpose = (typeof PURPOSES)[number];

export const TRT_DEVICES = ['nano', 'xavier-nx', 'agx-xavier'] as const;
export type TrtDevice = (typeof TRT_DEVICES)[number];

export const TRT_ARCHITECTURES = ['yolo', 'mobilenet_ssd'] as const;
export const HAILO_ARCHITECTURES = ['yolov3', 'mobilenet_ssd'] as const;
/**
 * For every other framework `architecture` is optional and names the output layout that
 * post-processing reads when the shapes alone cannot say it (the table is in docs/runtime.md).
 * `-` and `_` are equivalent, case does not matter.
 */
export const LAYOUT_ARCHITECTURES = [
  'ssd',
  'mobilenet_ssd',
  'tf_object_detection',
  'yolo',
  'yolov3',
  'yolov4',
  'yolov5',
  'yolov7',
  'yolov8',
  'yolov11',
  'yolo11',
  'yolov8-pose',
  'yolo11-pose',
  'heatmaps',
] as const;
export type Architecture =
  | (typeof TRT_ARCHITECTURES)[number]
  | (typeof HAILO_ARCHITECTURES)[number]
  | (typeof LAYOUT_ARCHITECTURES)[number];

/**
 * How /predict decodes a JPEG for this model (not a seed field; docs/runtime.md, "Decode mode").
 * `auto`: a JPEG at least twice the network input in both dimensions is decoded at libjpeg's
 * 1/2, 1/4 or 1/8 scale (the largest that keeps it at least the input size), then resized as
 * usual; `exact`: always the full-size decode cv2.imread does.
 */
export const DECODE_MODES = ['auto', 'exact'] as const;
export type DecodeMode = (typeof DECODE_MODES)[number];

/** `input_format` values other frameworks take ("auto" or empty: read from the model's input). */
export const INPUT_FORMATS = ['NCHW', 'NHWC', 'auto'] as const;

export interface ModelParameters {
  framework_type: Framework;
  /** Paths are relative to the model folder, never absolute, never with `..`. */
  model_file: string;
  /** [R, G, B] average intensity subtracted before scaling. Default [0, 0, 0]. */
  mean: [number, number, number];
  /** Multiplies pixel values after the mean is subtracted. Default 1. */
  scalefactor: number;
  /** [width, height] of the network input. */
  size: [number, number];
  purpose: Purpose;
  crop: boolean;
  config_file?: string;
  label_file?: string;
  colors_file?: string;
  swaprb: boolean;
  softmax: boolean;
  output_layer_names?: string[];
  device?: TrtDevice;
  architecture?: Architecture;
  quantize_input?: boolean;
  quantize_output?: boolean;
  input_format?: string;
  output_format?: string;
  /** Not a seed field: letterbox (true) or stretch (false) instead of the layout's default. */
  letterbox?: boolean;
  /** Not a seed field: the JPEG decode mode (DECODE_MODES); absent means `auto`. */
  decode?: DecodeMode;
  /** Not a seed field: run waiting requests together (protocol/manifest-batching.ts); absent means off. */
  dynamic_batching?: DynamicBatching;
  /** Parameter keys Outpost does not know are kept as they were. */
  [extra: string]: unknown;
}

export interface ModelManifest {
  accuracy: string;
  dataset: string;
  /** `owner/name`; the placeholder `<username>/<modelname>` until the developer fills it in. */
  id: string;
  inference_time: number;
  license: string;
  mean_average_precision_top_1: number;
  mean_average_precision_top_5: number;
  public: boolean;
  website_url: string;
  model_parameters: ModelParameters;
  /** Keys Outpost does not know are kept as they were, never dropped. */
  [extra: string]: unknown;
}

/** One file of a published version, as the catalog stores it and as signed metadata lists it. */
export interface VersionFile {
  /** Relative POSIX path inside the model folder. */
  path: string;
  sha256: string;
  size: number;
}
