import { floatOutput, labelOf, toImageX, toImageY } from './common.js';
import { type OutputLayout, resolveOutputLayout, tfDetectionOutputs } from './layouts.js';
import type { Box, DetectionPrediction, ObjectDetectionResult, PostContext, PostOptions } from './types.js';
import { OutpostError } from '../../../protocol/errors/index.js';

/**
 * Object detection for every layout of postprocess/layouts.ts (the table is in docs/runtime.md):
 *
 * - SSD `DetectionOutput` [1,1,N,7]: rows [image_id, label, confidence, x1, y1, x2, y2], corners
 *   normalised to the network input; `label` indexes the label file directly (so Caffe/TF SSD
 *   label files keep their "background" line 0). image_id -1 marks padding rows.
 * - TF Object Detection API: boxes [1,N,4] as normalised [ymin, xmin, ymax, xmax], scores and
 *   classes [1,N], num_detections [1]; a class id indexes the label file as SSD labels do.
 * - Darknet regions (OpenCV's region layer, YOLOv3/v4): rows [cx, cy, w, h, objectness, s_0..],
 *   normalised, one output per yolo layer; OpenCV already multiplied the class scores by the
 *   objectness, so the confidence is the best class score.
 * - YOLOv5/v7 [1,N,5+C]: rows [cx, cy, w, h, objectness, p_0..p_{C-1}], confidence =
 *   objectness x best p; network-input pixels (normalised when every candidate row stays within
 *   [0, 2], as some exports write them), possibly over several outputs.
 * - YOLOv8/v11 [1,4+C,N]: columns [cx, cy, w, h, p_0..p_{C-1}], no objectness: the confidence
 *   is the best class probability; network-input pixels.
 *
 * Boxes are mapped back to the caller's image (undoing resize, crop or letterbox), filtered by
 * confidence, then greedy per-label non-maximum suppression keeps the best of overlapping boxes.
 */
export function objectDetection(ctx: PostContext, opts: PostOptions = {}): ObjectDetectionResult {
  const min = opts.confidence ?? 0.3;
  const layout = ctx.layout ?? layoutFromShapes(ctx);
  const candidates = decode(ctx, layout, min);
  const kept = nms(candidates, opts.overlap ?? 0.3).slice(0, opts.topK ?? Infinity);
  const g = ctx.geometry;
  return {
    purpose: 'ObjectDetection',
    predictions: kept,
    image: { width: g.imageWidth, height: g.imageHeight },
    duration: ctx.duration,
  };
}

/** For callers that give no layout (unit use): the same shape rules the activation uses. */
export function layoutFromShapes(ctx: PostContext): OutputLayout {
  return resolveOutputLayout({
    purpose: ctx.purpose,
    framework: ctx.framework as never,
    params: {} as never,
    outputs: ctx.outputs,
    outputOrder: ctx.outputOrder,
    labels: ctx.labels,
    inputLayout: 'NCHW',
  }).layout;
}

function decode(ctx: PostContext, layout: OutputLayout, min: number): DetectionPrediction[] {
  switch (layout) {
    case 'ssd':
      return ssdRows(ctx, min);
    case 'tf_detection':
      return tfRows(ctx, min);
    case 'yolo_regions':
      return yoloRows(ctx, min, true);
    case 'yolov5':
      return yoloRows(ctx, min, false);
    case 'yolov8':
      return yolov8Columns(ctx, min);
    default:
      throw new OutpostError(
        'RUNTIME_OUTPUT_UNEXPECTED',
        `output layout ${layout} is not a detection layout; set "architecture" to a detection family`,
        { layout },
      );
  }
}

function ssdRows(ctx: PostContext, min: number): DetectionPrediction[] {
  const t = floatOutput(ctx);
  const s = t.shape;
  if (!(s.length === 4 && s[3] === 7))
    throw new OutpostError('RUNTIME_OUTPUT_UNEXPECTED', `SSD output has shape [${s}]; expected [1,1,N,7]`, {
      shape: s,
    });
  const d = t.data;
  const g = ctx.geometry;
  const out: DetectionPrediction[] = [];
  for (let r = 0; r + 7 <= d.length; r += 7) {
    const confidence = d[r + 2]!;
    if (d[r]! < 0 || !(confidence >= min)) continue;
    const index = Math.round(d[r + 1]!);
    out.push(
      pred(
        ctx,
        index,
        confidence,
        box(g, d[r + 3]! * g.netWidth, d[r + 4]! * g.netHeight, d[r + 5]! * g.netWidth, d[r + 6]! * g.netHeight),
      ),
    );
  }
  return out;
}

function tfRows(ctx: PostContext, min: number): DetectionPrediction[] {
  const names = tfDetectionOutputs(ctx.outputs, ctx.outputOrder);
  if (!names)
    throw new OutpostError(
      'RUNTIME_OUTPUT_UNEXPECTED',
      `TF detection needs boxes [1,N,4], scores [1,N], classes [1,N] (num_detections [1]); the outputs are ${ctx.outputOrder
        .map((n) => `${n} [${ctx.outputs[n]?.shape}]`)
        .join(', ')}`,
      {},
    );
  const num = (n: string) => Array.from(ctx.outputs[n]!.data as ArrayLike<number | bigint>, Number);
  const boxes = num(names.boxes),
    scores = num(names.scores),
    classes = num(names.classes);
  const count = Math.min(scores.length, names.count ? num(names.count)[0]! : scores.length);
  const g = ctx.geometry;
  const out: DetectionPrediction[] = [];
  for (let i = 0; i < count; i++) {
    const confidence = scores[i]!;
    if (!(confidence >= min)) continue;
    const [y1, x1, y2, x2] = boxes.slice(i * 4, i * 4 + 4) as [number, number, number, number];
    out.push(
      pred(
        ctx,
        Math.round(classes[i]!),
        confidence,
        box(g, x1 * g.netWidth, y1 * g.netHeight, x2 * g.netWidth, y2 * g.netHeight),
      ),
    );
  }
  return out;
}

interface Row {
  cx: number;
  cy: number;
  w: number;
  h: number;
  confidence: number;
  index: number;
}

function yoloRows(ctx: PostContext, min: number, regions: boolean): DetectionPrediction[] {
  const rows: Row[] = [];
  for (let k = 0; k < ctx.outputOrder.length; k++) {
    const t = floatOutput(ctx, k);
    const width = t.shape[t.shape.length - 1]!;
    const lead = t.shape.slice(0, -1);
    if (width < 6 || !(lead.length === 1 || (lead.length === 2 && lead[0] === 1))) {
      throw new OutpostError(
        'RUNTIME_OUTPUT_UNEXPECTED',
        `detection output "${ctx.outputOrder[k]}" has shape [${t.shape}]; ${regions ? 'darknet regions' : 'YOLOv5/v7'} is [1,N,5+C] or [N,5+C]`,
        { shape: t.shape },
      );
    }
    classCount(ctx, width - 5, `${regions ? 'darknet regions' : 'YOLOv5/v7'} output [${t.shape}]`);
    const d = t.data;
    for (let r = 0; r + width <= d.length; r += width) {
      let index = 0,
        best = -Infinity;
      for (let c = 5; c < width; c++)
        if (d[r + c]! > best) {
          best = d[r + c]!;
          index = c - 5;
        }
      const confidence = regions ? best : d[r + 4]! * best;
      if (confidence >= min) rows.push({ cx: d[r]!, cy: d[r + 1]!, w: d[r + 2]!, h: d[r + 3]!, confidence, index });
    }
  }
  const normalised = regions || rows.every((r) => Math.max(r.cx, r.cy, r.w, r.h) <= 2);
  return rows.map((r) => rowBox(ctx, r, normalised));
}

function yolov8Columns(ctx: PostContext, min: number): DetectionPrediction[] {
  const t = floatOutput(ctx);
  const s = t.shape;
  if (s.length !== 3 || s[0] !== 1 || s[1]! < 5)
    throw new OutpostError('RUNTIME_OUTPUT_UNEXPECTED', `YOLOv8 output has shape [${s}]; expected [1,4+C,N]`, {
      shape: s,
    });
  const f = s[1]!,
    n = s[2]!;
  classCount(ctx, f - 4, `YOLOv8 output [${s}]`);
  const d = t.data;
  const out: DetectionPrediction[] = [];
  for (let j = 0; j < n; j++) {
    let index = 0,
      best = -Infinity;
    for (let c = 4; c < f; c++)
      if (d[c * n + j]! > best) {
        best = d[c * n + j]!;
        index = c - 4;
      }
    if (!(best >= min)) continue;
    out.push(
      rowBox(ctx, { cx: d[j]!, cy: d[n + j]!, w: d[2 * n + j]!, h: d[3 * n + j]!, confidence: best, index }, false),
    );
  }
  return out;
}

/** YOLO outputs carry one score per class: a label file of another length means another layout. */
function classCount(ctx: PostContext, classes: number, what: string): void {
  if (ctx.labels.length > 0 && classes !== ctx.labels.length)
    throw new OutpostError(
      'RUNTIME_OUTPUT_UNEXPECTED',
      `${what} has ${classes} class scores but the label file has ${ctx.labels.length} labels; fix the label file or "architecture"`,
      { classes, labels: ctx.labels.length },
    );
}

function rowBox(ctx: PostContext, r: Row, normalised: boolean): DetectionPrediction {
  const g = ctx.geometry;
  const sx = normalised ? g.netWidth : 1,
    sy = normalised ? g.netHeight : 1;
  return pred(
    ctx,
    r.index,
    r.confidence,
    box(g, (r.cx - r.w / 2) * sx, (r.cy - r.h / 2) * sy, (r.cx + r.w / 2) * sx, (r.cy + r.h / 2) * sy),
  );
}

function pred(ctx: PostContext, index: number, confidence: number, b: Box): DetectionPrediction {
  return { label: labelOf(ctx.labels, index), index, confidence, box: b };
}

export function box(g: PostContext['geometry'], x1: number, y1: number, x2: number, y2: number): Box {
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
export function nms<T extends { index: number; confidence: number; box: Box }>(preds: T[], overlap: number): T[] {
  const sorted = [...preds].sort((a, b) => b.confidence - a.confidence);
  const kept: T[] = [];
  for (const p of sorted) {
    if (!kept.some((k) => k.index === p.index && iou(k.box, p.box) > overlap)) kept.push(p);
  }
  return kept;
}
