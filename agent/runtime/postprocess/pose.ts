import { OutpostError } from '../../../protocol/errors/index.js';
import { floatOutput, labelOf, toImageX, toImageY } from './common.js';
import { layoutFromShapes } from './detection.js';
import { yolov8Poses } from './pose-yolo.js';
import type { KeyPoint, PoseEstimationResult, PostContext, PostOptions } from './types.js';

/**
 * Keypoints from heatmaps [1, K, h, w] (OpenPose-style nets put their part-affinity fields after
 * the K heatmaps; only the first `labels.length` channels are read when a label file names the
 * keypoints). Each keypoint is the first maximum of its heatmap, at the centre of that heatmap
 * cell in network-input pixels, mapped back to the caller's image; a peak below the confidence
 * (default 0.1, OpenPose's usual threshold) is reported as null, like edgeIQ's (-1, -1).
 * This finds one pose; grouping several people needs the affinity fields and is not done here.
 */
export function poseEstimation(ctx: PostContext, opts: PostOptions = {}): PoseEstimationResult {
  if ((ctx.layout ?? layoutFromShapes(ctx)) === 'yolov8_pose') return yolov8Poses(ctx, opts);
  const t = floatOutput(ctx);
  if (t.shape.length !== 4 || t.shape[0] !== 1) {
    throw new OutpostError(
      'RUNTIME_OUTPUT_UNEXPECTED',
      `pose output has shape [${t.shape}]; expected heatmaps [1,K,h,w]`,
      { shape: t.shape },
    );
  }
  const [, channels, h, w] = t.shape as [number, number, number, number];
  const k = ctx.labels.length > 0 ? Math.min(ctx.labels.length, channels) : channels;
  const min = opts.confidence ?? 0.1;
  const g = ctx.geometry;
  const key_points: Record<string, KeyPoint | null> = {};
  let sum = 0,
    found = 0;
  for (let c = 0; c < k; c++) {
    const base = c * h * w;
    let best = -Infinity,
      at = 0;
    for (let i = 0; i < h * w; i++)
      if (t.data[base + i]! > best) {
        best = t.data[base + i]!;
        at = i;
      }
    const name = labelOf(ctx.labels, c);
    if (!(best >= min)) {
      key_points[name] = null;
      continue;
    }
    const xNet = ((at % w) + 0.5) * (g.netWidth / w);
    const yNet = (Math.floor(at / w) + 0.5) * (g.netHeight / h);
    key_points[name] = { x: toImageX(g, xNet), y: toImageY(g, yNet), confidence: best };
    sum += best;
    found++;
  }
  const poses = found > 0 ? [{ key_points, score: sum / k }] : [];
  return {
    purpose: 'PoseEstimation',
    poses,
    image: { width: g.imageWidth, height: g.imageHeight },
    duration: ctx.duration,
  };
}
