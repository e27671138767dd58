import { OutpostError } from '../../../protocol/errors/index.js';
import type { Framework, ModelParameters, Purpose } from '../../../protocol/manifest-types.js';
import type { Tensor } from '../backend.js';
import type { InputLayout } from '../input-layout.js';
import { showShape } from '../tensors.js';

/**
 * Which output layout a model has, decided once (at the activation smoke test, from the shapes
 * the model really produced) and then used for every request. `architecture` in the model JSON
 * names it where the shapes cannot; otherwise it is read from the shapes, and `source` says
 * which of the two decided, so the model's metadata never hides a guess.
 */
export type OutputLayout =
  | 'classification'
  | 'ssd'
  | 'tf_detection'
  | 'yolo_regions'
  | 'yolov5'
  | 'yolov8'
  | 'heatmaps'
  | 'yolov8_pose'
  | 'segmentation_nchw'
  | 'segmentation_nhwc'
  | 'segmentation_argmax';

export interface ResolvedLayout {
  layout: OutputLayout;
  source: 'architecture' | 'shape';
  /** Pre-processing: the ultralytics letterbox instead of blobFromImage's stretch (or crop). */
  letterbox: boolean;
}

/**
 * `architecture` values for the frameworks the seed leaves it open for (tensor-rt and hailo keep
 * the seed's own values, which name the same layouts). Lower-case; `-` and `_` are equivalent.
 */
export const ARCHITECTURE_LAYOUTS: Readonly<Record<string, OutputLayout>> = {
  ssd: 'ssd',
  mobilenet_ssd: 'ssd',
  tf_object_detection: 'tf_detection',
  yolo: 'yolo_regions',
  yolov3: 'yolo_regions',
  yolov4: 'yolo_regions',
  yolov5: 'yolov5',
  yolov7: 'yolov5',
  yolov8: 'yolov8',
  yolov11: 'yolov8',
  yolo11: 'yolov8',
  yolov8_pose: 'yolov8_pose',
  yolo11_pose: 'yolov8_pose',
  heatmaps: 'heatmaps',
};

const LETTERBOXED: ReadonlySet<OutputLayout> = new Set(['yolov5', 'yolov8', 'yolov8_pose']);

export interface LayoutQuery {
  purpose: Purpose;
  framework: Framework;
  params: ModelParameters;
  outputs: Record<string, Tensor>;
  outputOrder: string[];
  labels: string[];
  inputLayout: InputLayout;
}

export function architectureLayout(params: ModelParameters): OutputLayout | undefined {
  const a = typeof params.architecture === 'string' ? params.architecture.trim().toLowerCase() : '';
  return a === '' ? undefined : ARCHITECTURE_LAYOUTS[a.replace(/-/g, '_')];
}

/** The layout, or RUNTIME_OUTPUT_UNEXPECTED naming the shapes seen and what to set. */
export function resolveOutputLayout(q: LayoutQuery): ResolvedLayout {
  const byArch = architectureLayout(q.params);
  const layout = byArch ?? fromShapes(q);
  const lb = q.params.letterbox;
  return {
    layout,
    source: byArch ? 'architecture' : 'shape',
    letterbox: typeof lb === 'boolean' ? lb : LETTERBOXED.has(layout),
  };
}

function fromShapes(q: LayoutQuery): OutputLayout {
  const shapes = q.outputOrder.map((n) => q.outputs[n]?.shape ?? []);
  const first = shapes[0] ?? [];
  const L = q.labels.length;
  switch (q.purpose) {
    case 'Classification':
      return 'classification';
    case 'ObjectDetection': {
      if (isTfDetection(q)) return 'tf_detection';
      if (first.length === 4 && first[0] === 1 && first[1] === 1 && first[3] === 7) return 'ssd';
      if (q.framework === 'darknet') return 'yolo_regions';
      const yolo = yoloFamily(first, L);
      if (yolo) return yolo;
      break;
    }
    case 'PoseEstimation': {
      if (first.length === 4 && first[0] === 1) return 'heatmaps';
      const [, f, n] = first;
      if (first.length === 3 && f !== undefined && n !== undefined && f >= 8 && (f - 5) % 3 === 0 && n > f)
        return 'yolov8_pose';
      break;
    }
    case 'SemanticSegmentation': {
      const t = q.outputs[q.outputOrder[0] ?? ''];
      const ints = t !== undefined && t.dtype !== 'float32' && t.dtype !== 'float16';
      if (first.length === 3 && first[0] === 1) return 'segmentation_argmax';
      if (first.length === 4 && first[0] === 1) {
        if (ints && first[1] === 1) return 'segmentation_argmax';
        if (L > 1 && first[1] === L && first[3] !== L) return 'segmentation_nchw';
        if (L > 1 && first[3] === L && first[1] !== L) return 'segmentation_nhwc';
        // Without a label count to match, a channels-last network keeps channels last.
        return q.inputLayout === 'NHWC' ? 'segmentation_nhwc' : 'segmentation_nchw';
      }
      break;
    }
  }
  throw unreadable(q, shapes);
}

/** TF Object Detection API: boxes [1,N,4], scores and classes [1,N], num_detections [1]. */
function isTfDetection(q: LayoutQuery): boolean {
  if (q.outputOrder.length < 3) return false;
  return tfDetectionOutputs(q.outputs, q.outputOrder) !== undefined;
}

export interface TfOutputs {
  boxes: string;
  scores: string;
  classes: string;
  count?: string;
}

/**
 * Finds the four TF OD outputs by name first (detection_boxes, detection_scores, ...), then by
 * shape: the [1,N,4] tensor is boxes, num_detections has one element, and of the two [1,N]
 * tensors the one with any non-integral value is scores (classes hold whole class ids).
 */
export function tfDetectionOutputs(outputs: Record<string, Tensor>, order: string[]): TfOutputs | undefined {
  const named = (re: RegExp) => order.find((n) => re.test(n.toLowerCase()));
  const boxes = named(/box/) ?? order.find((n) => isBoxes(outputs[n]));
  if (!boxes || !isBoxes(outputs[boxes])) return undefined;
  const n = outputs[boxes]!.shape[1]!;
  const perBox = order.filter((o) => o !== boxes && isPerBox(outputs[o], n));
  if (perBox.length < 2) return undefined;
  let scores = named(/score/);
  let classes = named(/class/);
  if (!scores || !classes || !perBox.includes(scores) || !perBox.includes(classes)) {
    const fractional = perBox.find((o) => Array.from(outputs[o]!.data as ArrayLike<number>).some((v) => v % 1 !== 0));
    scores = fractional ?? perBox[0]!;
    classes = perBox.find((o) => o !== scores)!;
  }
  const count = order.find((o) => ![boxes, scores, classes].includes(o) && (outputs[o]?.data.length ?? 0) === 1);
  return { boxes, scores, classes, ...(count ? { count } : {}) };
}

function isBoxes(t: Tensor | undefined): boolean {
  return !!t && t.shape.length === 3 && t.shape[0] === 1 && t.shape[2] === 4;
}
function isPerBox(t: Tensor | undefined, n: number): boolean {
  return !!t && t.shape.length === 2 && t.shape[0] === 1 && t.shape[1] === n;
}

/**
 * YOLOv5/v7 rows [1,N,5+C] against YOLOv8/v11 columns [1,4+C,N]. With a label file (detection
 * models have one) the label count must fit: exactly one family fits, or both do and the longer
 * axis is the candidate axis (N is in the thousands for real models, the features in the tens).
 * When neither fits, nothing is guessed: the model needs `architecture`.
 */
function yoloFamily(s: readonly number[], labels: number): OutputLayout | undefined {
  const [a, b] = s.length === 3 && s[0] === 1 ? [s[1]!, s[2]!] : s.length === 2 ? [s[0]!, s[1]!] : [0, 0];
  if (a === 0) return undefined;
  const v5 = labels > 0 ? b === 5 + labels : b >= 6 && a > b;
  const v8 = s.length === 3 && (labels > 0 ? a === 4 + labels : a >= 5 && b > a);
  if (v5 && v8) return b > a ? 'yolov8' : 'yolov5';
  return v5 ? 'yolov5' : v8 ? 'yolov8' : undefined;
}

function unreadable(q: LayoutQuery, shapes: number[][]): OutpostError {
  const seen = q.outputOrder.map((n, i) => `${n} ${showShape(shapes[i] ?? [])}`).join(', ');
  const want: Record<Purpose, string> = {
    Classification: 'scores',
    ObjectDetection:
      'SSD [1,1,N,7], TF detection (boxes [1,N,4], classes, scores, num_detections), YOLOv5/v7 [1,N,5+C] or YOLOv8/v11 [1,4+C,N]',
    PoseEstimation: 'heatmaps [1,K,h,w] or YOLOv8-pose [1,5+3K,N]',
    SemanticSegmentation: 'scores [1,C,h,w] or [1,h,w,C], or a class map [1,h,w]',
  };
  return new OutpostError(
    'RUNTIME_OUTPUT_UNEXPECTED',
    `${q.purpose} cannot read the outputs ${seen}; it reads ${want[q.purpose]}. Set "architecture" (one of ${Object.keys(
      ARCHITECTURE_LAYOUTS,
    ).join(', ')}) or "output_layer_names" in alwaysai.model.json, or use KServe inference on raw tensors`,
    { outputs: Object.fromEntries(q.outputOrder.map((n, i) => [n, shapes[i]])), purpose: q.purpose },
  );
}
