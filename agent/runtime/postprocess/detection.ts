import { OutpostError } from '../../../protocol/errors/index.js';
import { floatOutput, labelOf, toImageX, toImageY } from './common.js';
import type { Box, DetectionPrediction, ObjectDetectionResult, PostContext, PostOptions } from './types.js';

/**
 * Object detection from the two output families the seed's frameworks produce:
 *
 * - SSD `DetectionOutput`, shape [1, 1, N, 7]: rows [image_id, label, confidence, x1, y1, x2, y2]
 *   with corners normalised to the network input; `label` indexes the label file directly (so
 *   Caffe/TF SSD label files keep their "background" line 0).
 * - YOLO/darknet, shape [1, N, 5+C] or [N, 5+C], possibly split over several outputs (one per
 *   head): rows [cx, cy, w, h, objectness, p_0..p_{C-1}], confidence = objectness * max p.
 *   Coordinates are normalised for darknet (OpenCV's region layer) and for any model whose
 *   candidate rows all stay within [0, 2]; otherwise they are network-input pixels (YOLOv5 and
 *   similar ONNX exports).
 *
 * Boxes are mapped back to the caller's image (undoing resize and crop), filtered by
 * confidence, then greedy per-label non-maximum suppression keeps the best of overlapping boxes.
 */
export function objectDetection(ctx: PostContext, opts: PostOptions = {}): ObjectDetectionResult {
  const min = opts.confidence ?? 0.3;
  const first = floatOutput(ctx);
  const s = first.shape;
  const candidates =
    s.length === 4 && s[3] === 7 && s[0] === 1 && s[1] === 1 ? ssdRows(ctx, first.data, min) : yoloRows(ctx, min);
  const kept = nms(candidates, opts.overlap ?? 0.3).slice(0, opts.topK ?? Infinity);
  const g = ctx.geometry;
  return {
    purpose: 'ObjectDetection',
    predictions: kept,
    image: { width: g.imageWidth, height: g.imageHeight },
    duration: ctx.duration,
  };
}

function ssdRows(ctx: PostContext, d: Float32Array, min: number): DetectionPrediction[] {
  const g = ctx.geometry;
  const out: DetectionPrediction[] = [];
  for (let r = 0; r + 7 <= d.length; r += 7) {
    const confidence = d[r + 2]!;
    // image_id -1 marks padding rows in Caffe's DetectionOutput.
    if (d[r]! < 0 || !(confidence >= min)) continue;
    const index = Math.round(d[r + 1]!);
    out.push({
      label: labelOf(ctx.labels, index),
      index,
      confidence,
      box: box(g, d[r + 3]! * g.netWidth, d[r + 4]! * g.netHeight, d[r + 5]! * g.netWidth, d[r + 6]! * g.netHeight),
    });
  }
  return out;
}

function yoloRows(ctx: PostContext, min: number): DetectionPrediction[] {
  const g = ctx.geometry;
  const rows: { cx: number; cy: number; w: number; h: number; confidence: number; index: number }[] = [];
  for (let k = 0; k < ctx.outputOrder.length; k++) {
    const t = floatOutput(ctx, k);
    const width = t.shape[t.shape.length - 1]!;
    const lead = t.shape.slice(0, -1);
    if (width < 6 || !(lead.length === 1 || (lead.length === 2 && lead[0] === 1))) {
      throw new OutpostError(
        'RUNTIME_OUTPUT_UNEXPECTED',
        `detection output "${ctx.outputOrder[k]}" has shape [${t.shape}]; expected [1,1,N,7] (SSD) or [1,N,5+C] (YOLO)`,
        { shape: t.shape },
      );
    }
    const d = t.data;
    for (let r = 0; r + width <= d.length; r += width) {
      let index = 0,
        best = -Infinity;
      for (let c = 5; c < width; c++)
        if (d[r + c]! > best) {
          best = d[r + c]!;
          index = c - 5;
        }
      const confidence = d[r + 4]! * best;
      if (confidence >= min) rows.push({ cx: d[r]!, cy: d[r + 1]!, w: d[r + 2]!, h: d[r + 3]!, confidence, index });
    }
  }
  const normalised = ctx.framework === 'darknet' || rows.every((r) => Math.max(r.cx, r.cy, r.w, r.h) <= 2);
  const sx = normalised ? g.netWidth : 1,
    sy = normalised ? g.netHeight : 1;
  return rows.map((r) => ({
    label: labelOf(ctx.labels, r.index),
    index: r.index,
    confidence: r.confidence,
    box: box(g, (r.cx - r.w / 2) * sx, (r.cy - r.h / 2) * sy, (r.cx + r.w / 2) * sx, (r.cy + r.h / 2) * sy),
  }));
}

function box(g: PostContext['geometry'], x1: number, y1: number, x2: number, y2: number): Box {
  return { start_x: toImageX(g, x1), start_y: toImageY(g, y1), end_x: toImageX(g, x2), end_y: toImageY(g, y2) };
}

export function iou(a: Box, b: Box): number {
  const iw = Math.min(a.end_x, b.end_x) - Math.max(a.start_x, b.start_x);
  const ih = Math.min(a.end_y, b.end_y) - Math.max(a.start_y, b.start_y);
  if (iw <= 0 || ih <= 0) return 0;
  const inter = iw * ih;
  const area = (p: Box) => (p.end_x - p.start_x) * (p.end_y - p.start_y);
  return inter / (area(a) + area(b) - inter);
}

/** Greedy NMS per label, best first; the result stays sorted by confidence. */
export function nms(preds: DetectionPrediction[], overlap: number): DetectionPrediction[] {
  const sorted = [...preds].sort((a, b) => b.confidence - a.confidence);
  const kept: DetectionPrediction[] = [];
  for (const p of sorted) {
    if (!kept.some((k) => k.index === p.index && iou(k.box, p.box) > overlap)) kept.push(p);
  }
  return kept;
}
