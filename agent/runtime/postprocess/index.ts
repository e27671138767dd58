import type { PostContext, PostOptions, PredictResult } from './types.js';
import { classification } from './classification.js';
import { objectDetection } from './detection.js';
import { poseEstimation } from './pose.js';
import { semanticSegmentation } from './segmentation.js';

export * from './types.js';
export { classification, objectDetection, poseEstimation, semanticSegmentation };
export { colorMask } from './segmentation.js';
export { nms, iou } from './detection.js';

/** Dispatches on the model's purpose. */
export function postprocess(ctx: PostContext, opts: PostOptions = {}): PredictResult {
  switch (ctx.purpose) {
    case 'Classification':
      return classification(ctx, opts);
    case 'ObjectDetection':
      return objectDetection(ctx, opts);
    case 'PoseEstimation':
      return poseEstimation(ctx, opts);
    case 'SemanticSegmentation':
      return semanticSegmentation(ctx);
  }
}
