import { OutpostError } from '../../../protocol/errors/index.js';
import type { Tensor } from '../backend.js';
import type { Geometry } from '../preprocess.js';
import type { PostContext } from './types.js';

/** The first output's float data, or all outputs in order (YOLO heads come in several). */
export function floatOutput(ctx: PostContext, index = 0): Tensor & { data: Float32Array } {
  const name = ctx.outputOrder[index];
  const t = name === undefined ? undefined : ctx.outputs[name];
  if (!t)
    throw new OutpostError('RUNTIME_OUTPUT_UNEXPECTED', `the model produced no output #${index} for ${ctx.purpose}`, {
      outputs: Object.keys(ctx.outputs),
    });
  if (t.dtype !== 'float32' || !(t.data instanceof Float32Array)) {
    throw new OutpostError(
      'RUNTIME_OUTPUT_UNEXPECTED',
      `output "${name}" is ${t.dtype}; ${ctx.purpose} post-processing reads float32`,
      { output: name, dtype: t.dtype },
    );
  }
  return t as Tensor & { data: Float32Array };
}

export function labelOf(labels: string[], i: number): string {
  return labels[i] ?? `class_${i}`;
}

/** Network-input pixel coordinates -> caller's image pixels, undoing resize and crop, clamped. */
export function toImageX(g: Geometry, xNet: number): number {
  return clamp((xNet + g.offsetX) / g.scaleX, 0, g.imageWidth);
}
export function toImageY(g: Geometry, yNet: number): number {
  return clamp((yNet + g.offsetY) / g.scaleY, 0, g.imageHeight);
}

export function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : Math.min(v, hi);
}

/** Numerically stable softmax. */
export function softmax(v: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < v.length; i++) max = Math.max(max, v[i]!);
  const out = new Float64Array(v.length);
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += out[i] = Math.exp(v[i]! - max);
  for (let i = 0; i < v.length; i++) out[i]! /= sum;
  return out;
}
