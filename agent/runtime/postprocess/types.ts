import type { Purpose } from '../../../protocol/manifest-types.js';
import type { Tensor } from '../backend.js';
import type { Geometry } from '../preprocess.js';
import type { OutputLayout } from './layouts.js';

/**
 * Result objects shaped like alwaysAI edgeIQ's results (`predictions` with `label`,
 * `confidence`, `box: {start_x, start_y, end_x, end_y}`; `duration` in seconds), so that app
 * code written against edgeIQ reads them unchanged. Coordinates are in pixels of the image the
 * caller sent. Every result carries `duration`: the inference time in seconds (pre- and
 * post-processing excluded, as in edgeIQ).
 */
export interface Box {
  start_x: number;
  start_y: number;
  end_x: number;
  end_y: number;
}

export interface ClassificationPrediction {
  label: string;
  index: number;
  confidence: number;
}
export interface ClassificationResult {
  purpose: 'Classification';
  predictions: ClassificationPrediction[];
  duration: number;
}

export interface DetectionPrediction {
  label: string;
  index: number;
  confidence: number;
  box: Box;
}
export interface ObjectDetectionResult {
  purpose: 'ObjectDetection';
  predictions: DetectionPrediction[];
  image: { width: number; height: number };
  duration: number;
}

export interface KeyPoint {
  x: number;
  y: number;
  confidence: number;
}
export interface Pose {
  key_points: Record<string, KeyPoint | null>;
  score: number;
  /** The person's box (multi-person models such as YOLOv8-pose). */
  box?: Box;
}
export interface PoseEstimationResult {
  purpose: 'PoseEstimation';
  poses: Pose[];
  image: { width: number; height: number };
  duration: number;
}

export interface SemanticSegmentationResult {
  purpose: 'SemanticSegmentation';
  /** class index per image pixel, rows of the caller's image (edgeIQ's class_map). */
  class_map: number[][];
  class_list: string[];
  /** The model's colors file, one [x, y, z] per class index, in the order the file writes them. */
  colors: [number, number, number][];
  duration: number;
}

export type PredictResult =
  | ClassificationResult
  | ObjectDetectionResult
  | PoseEstimationResult
  | SemanticSegmentationResult;

/** Caller options; defaults follow edgeIQ (confidence_level 0.3, overlap_threshold 0.3). */
export interface PostOptions {
  confidence?: number;
  /** IoU above which a lower-scored box of the same label is suppressed. */
  overlap?: number;
  /** Keep at most this many predictions (classification and detection). */
  topK?: number;
}

export interface PostContext {
  outputs: Record<string, Tensor>;
  /** Output names in the order the model (or output_layer_names) gives them. */
  outputOrder: string[];
  labels: string[];
  colors?: [number, number, number][];
  geometry: Geometry;
  softmax: boolean;
  framework: string;
  duration: number;
  purpose: Purpose;
  /** The output layout decided at activation; read from the shapes when absent. */
  layout?: OutputLayout;
}
