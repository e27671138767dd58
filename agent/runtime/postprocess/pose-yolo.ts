import { OutpostError } from '../../../protocol/errors/index.js';
import { floatOutput, toImageX, toImageY } from './common.js';
import { box, nms } from './detection.js';
import type { Box, KeyPoint, Pose, PoseEstimationResult, PostContext, PostOptions } from './types.js';

/** COCO's 17 keypoints, the order YOLOv8-pose models trained on COCO emit them in. */
export const COCO_KEYPOINTS = [
  'nose',
  'left_eye',
  'right_eye',
  'left_ear',
  'right_ear',
  'left_shoulder',
  'right_shoulder',
  'left_elbow',
  'right_elbow',
  'left_wrist',
  'right_wrist',
  'left_hip',
  'right_hip',
  'left_knee',
  'right_knee',
  'left_ankle',
  'right_ankle',
];

/** A keypoint whose visibility is below this is reported as null (ultralytics draws none below 0.5). */
export const KEYPOINT_VISIBLE = 0.5;

/**
 * Multi-person pose from YOLOv8/v11-pose, [1, 5+3K, N]: per candidate column [cx, cy, w, h,
 * person score, then K x (x, y, visibility)], network-input pixels. Candidates at or above the
 * confidence (default 0.25, ultralytics' own) go through NMS as boxes of one class; each kept
 * person becomes a pose with its keypoints mapped back to the caller's image. Keypoint names
 * come from the label file when it has K lines, else COCO's names when K is 17, else kp_<i>.
 */
export function yolov8Poses(ctx: PostContext, opts: PostOptions = {}): PoseEstimationResult {
  const t = floatOutput(ctx);
  const s = t.shape;
  const f = s[1] ?? 0;
  if (s.length !== 3 || s[0] !== 1 || f < 8 || (f - 5) % 3 !== 0) {
    throw new OutpostError('RUNTIME_OUTPUT_UNEXPECTED', `YOLOv8-pose output has shape [${s}]; expected [1,5+3K,N]`, {
      shape: s,
    });
  }
  const n = s[2]!,
    k = (f - 5) / 3;
  const names =
    ctx.labels.length === k
      ? ctx.labels
      : k === COCO_KEYPOINTS.length
        ? COCO_KEYPOINTS
        : Array.from({ length: k }, (_, i) => `kp_${i}`);
  const d = t.data;
  const g = ctx.geometry;
  const min = opts.confidence ?? 0.25;
  const people: { index: number; confidence: number; box: Box; column: number }[] = [];
  for (let j = 0; j < n; j++) {
    const score = d[4 * n + j]!;
    if (!(score >= min)) continue;
    const cx = d[j]!,
      cy = d[n + j]!,
      w = d[2 * n + j]!,
      h = d[3 * n + j]!;
    people.push({
      index: 0,
      confidence: score,
      box: box(g, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2),
      column: j,
    });
  }
  const kept = nms(people, opts.overlap ?? 0.45).slice(0, opts.topK ?? Infinity);
  const poses: Pose[] = kept.map((p) => {
    const key_points: Record<string, KeyPoint | null> = {};
    for (let i = 0; i < k; i++) {
      const at = (c: number) => d[(5 + 3 * i + c) * n + p.column]!;
      const v = at(2);
      key_points[names[i]!] =
        v >= KEYPOINT_VISIBLE ? { x: toImageX(g, at(0)), y: toImageY(g, at(1)), confidence: v } : null;
    }
    return { key_points, score: p.confidence, box: p.box };
  });
  return {
    purpose: 'PoseEstimation',
    poses,
    image: { width: g.imageWidth, height: g.imageHeight },
    duration: ctx.duration,
  };
}
