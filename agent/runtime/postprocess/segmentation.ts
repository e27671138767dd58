import { OutpostError } from '../../../protocol/errors/index.js';
import type { RawFrame } from '../preprocess.js';
import { clamp, floatOutput, labelOf } from './common.js';
import type { PostContext, SemanticSegmentationResult } from './types.js';

/**
 * Class map from scores [1, C, h, w]: the first maximum over C per cell, then sampled back to
 * the caller's image by nearest neighbour through the pre-processing geometry (so a cropped
 * border takes the class of the nearest kept cell), as edgeIQ resizes its class_map to the frame.
 */
export function semanticSegmentation(ctx: PostContext): SemanticSegmentationResult {
  const t = floatOutput(ctx);
  if (t.shape.length !== 4 || t.shape[0] !== 1) {
    throw new OutpostError(
      'RUNTIME_OUTPUT_UNEXPECTED',
      `segmentation output has shape [${t.shape}]; expected scores [1,C,h,w]`,
      { shape: t.shape },
    );
  }
  const [, classes, h, w] = t.shape as [number, number, number, number];
  const plane = h * w;
  const cells = new Uint16Array(plane);
  for (let i = 0; i < plane; i++) {
    let best = t.data[i]!,
      arg = 0;
    for (let c = 1; c < classes; c++)
      if (t.data[c * plane + i]! > best) {
        best = t.data[c * plane + i]!;
        arg = c;
      }
    cells[i] = arg;
  }
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
