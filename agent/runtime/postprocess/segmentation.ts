import { OutpostError } from '../../../protocol/errors/index.js';
import type { RawFrame } from '../preprocess.js';
import { clamp, floatOutput, labelOf } from './common.js';
import { layoutFromShapes } from './detection.js';
import type { PostContext, SemanticSegmentationResult } from './types.js';

/**
 * Class map from scores [1, C, h, w] (NCHW) or [1, h, w, C] (NHWC): the first maximum over C per
 * cell; or from a class map the model already argmaxed, [1, h, w] (or [1, 1, h, w]) of integers
 * or whole floats. The cells are then sampled back to the caller's image by nearest neighbour
 * through the pre-processing geometry (so a cropped border takes the class of the nearest kept
 * cell), as edgeIQ resizes its class_map to the frame.
 */
export function semanticSegmentation(ctx: PostContext): SemanticSegmentationResult {
  const layout = ctx.layout ?? layoutFromShapes(ctx);
  const { cells, h, w, classes } =
    layout === 'segmentation_argmax' ? argmaxed(ctx) : scores(ctx, layout === 'segmentation_nhwc');
  const g = ctx.geometry;
  const colIdx = Array.from({ length: g.imageWidth }, (_, x) =>
    clamp(Math.floor((((x + 0.5) * g.scaleX - g.offsetX) * w) / g.netWidth), 0, w - 1),
  );
  const class_map: number[][] = [];
  for (let y = 0; y < g.imageHeight; y++) {
    const cy = clamp(Math.floor((((y + 0.5) * g.scaleY - g.offsetY) * h) / g.netHeight), 0, h - 1);
    class_map.push(colIdx.map((cx) => cells[cy * w + cx]!));
  }
  const class_list = Array.from({ length: classes }, (_, i) => labelOf(ctx.labels, i));
  return { purpose: 'SemanticSegmentation', class_map, class_list, colors: ctx.colors ?? [], duration: ctx.duration };
}

interface Cells {
  cells: Uint32Array;
  h: number;
  w: number;
  classes: number;
}

function scores(ctx: PostContext, nhwc: boolean): Cells {
  const t = floatOutput(ctx);
  if (t.shape.length !== 4 || t.shape[0] !== 1) {
    throw new OutpostError(
      'RUNTIME_OUTPUT_UNEXPECTED',
      `segmentation output has shape [${t.shape}]; expected scores [1,C,h,w] or [1,h,w,C]`,
      { shape: t.shape },
    );
  }
  const [, a, b, c] = t.shape as [number, number, number, number];
  const [classes, h, w] = nhwc ? [c, a, b] : [a, b, c];
  const plane = h * w;
  // Element (class k, cell i) lives at k*plane + i (NCHW) or i*classes + k (NHWC).
  const at = nhwc ? (k: number, i: number) => i * classes + k : (k: number, i: number) => k * plane + i;
  const cells = new Uint32Array(plane);
  for (let i = 0; i < plane; i++) {
    let best = t.data[at(0, i)]!,
      arg = 0;
    for (let k = 1; k < classes; k++)
      if (t.data[at(k, i)]! > best) {
        best = t.data[at(k, i)]!;
        arg = k;
      }
    cells[i] = arg;
  }
  return { cells, h, w, classes };
}

function argmaxed(ctx: PostContext): Cells {
  const name = ctx.outputOrder[0] ?? '';
  const t = ctx.outputs[name];
  const s = t?.shape ?? [];
  const ok = t && s[0] === 1 && (s.length === 3 || (s.length === 4 && s[1] === 1));
  if (!ok) {
    throw new OutpostError(
      'RUNTIME_OUTPUT_UNEXPECTED',
      `segmentation output "${name}" has shape [${s}]; a class map is [1,h,w] or [1,1,h,w]`,
      { shape: s },
    );
  }
  const h = s[s.length - 2]!,
    w = s[s.length - 1]!;
  const src = t.data as ArrayLike<number | bigint>;
  const cells = new Uint32Array(h * w);
  let max = 0;
  for (let i = 0; i < cells.length; i++) {
    const v = Number(src[i]!);
    if (!Number.isInteger(v) || v < 0) {
      throw new OutpostError(
        'RUNTIME_OUTPUT_UNEXPECTED',
        `segmentation output "${name}" holds ${v} at cell ${i}; a class map holds class indices (integers >= 0)`,
        { value: v },
      );
    }
    cells[i] = v;
    if (v > max) max = v;
  }
  return { cells, h, w, classes: Math.max(ctx.labels.length, max + 1) };
}

/** The class map painted with the model's colors (classes without a color stay black). */
export function colorMask(result: SemanticSegmentationResult): RawFrame {
  const height = result.class_map.length;
  const width = height > 0 ? result.class_map[0]!.length : 0;
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const row = result.class_map[y]!;
    for (let x = 0; x < width; x++) {
      const c = result.colors[row[x]!];
      if (c) data.set(c, (y * width + x) * 3);
    }
  }
  return { width, height, channels: 3, format: 'rgb', data };
}
