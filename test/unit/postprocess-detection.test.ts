import { describe, expect, it } from 'vitest';
import { classification, iou, nms, objectDetection } from '../../agent/runtime/postprocess/index.js';
import type { PostContext } from '../../agent/runtime/postprocess/index.js';
import type { Geometry } from '../../agent/runtime/preprocess.js';

const geo = (over: Partial<Geometry> = {}): Geometry => ({
  imageWidth: 200,
  imageHeight: 100,
  netWidth: 100,
  netHeight: 100,
  scaleX: 0.5,
  scaleY: 1,
  offsetX: 0,
  offsetY: 0,
  ...over,
});
const ctx = (shape: number[], data: number[], over: Partial<PostContext> = {}): PostContext => ({
  outputs: { out: { dtype: 'float32', shape, data: Float32Array.from(data) } },
  outputOrder: ['out'],
  labels: ['background', 'cat', 'dog'],
  geometry: geo(),
  softmax: false,
  framework: 'onnx',
  duration: 0.01,
  purpose: 'ObjectDetection',
  ...over,
});

describe('post-processing: detection', () => {
  it('SSD rows: threshold, padding rows, label lookup, corners mapped to image pixels', () => {
    const r = objectDetection(
      ctx([1, 1, 3, 7], [0, 1, 0.9, 0.1, 0.2, 0.5, 0.6, -1, 2, 0.99, 0, 0, 1, 1, 0, 2, 0.2, 0, 0, 1, 1]),
    );
    expect(r.predictions).toHaveLength(1);
    const p = r.predictions[0]!;
    expect(p).toMatchObject({ label: 'cat', index: 1 });
    expect(p.confidence).toBeCloseTo(0.9, 6);
    // x: 0.1 * 100 net px / 0.5 = 20 image px; y: 0.2 * 100 / 1 = 20.
    expect(p.box.start_x).toBeCloseTo(20, 4);
    expect(p.box.start_y).toBeCloseTo(20, 4);
    expect(p.box.end_x).toBeCloseTo(100, 4);
    expect(p.box.end_y).toBeCloseTo(60, 4);
    expect(r.duration).toBe(0.01);
  });

  it('YOLO rows: objectness x class score, pixel coordinates, per-label NMS', () => {
    const rows = [
      [50, 50, 20, 20, 0.9, 0.1, 0.9, 0], // dog 0.81
      [52, 50, 20, 20, 0.8, 0.1, 0.9, 0], // overlapping dog 0.72: suppressed
      [52, 50, 20, 20, 0.8, 0.9, 0.1, 0], // same place, other label: kept
      [10, 10, 4, 4, 0.2, 1, 0, 0], // below threshold
    ];
    const r = objectDetection(ctx([1, 4, 8], rows.flat(), { labels: ['a', 'b', 'c'] }));
    expect(r.predictions.map((p) => p.label)).toEqual(['b', 'a']);
    expect(r.predictions[0]!.box).toEqual({ start_x: 80, start_y: 40, end_x: 120, end_y: 60 });
  });

  it('rejects an output layout it cannot read', () => {
    expect(() => objectDetection(ctx([1, 3, 4], new Array(12).fill(0)))).toThrow(
      expect.objectContaining({ code: 'RUNTIME_OUTPUT_UNEXPECTED' }),
    );
    expect(() =>
      objectDetection({ ...ctx([1], [0]), outputs: { out: { dtype: 'int32', shape: [1], data: new Int32Array(1) } } }),
    ).toThrow(expect.objectContaining({ code: 'RUNTIME_OUTPUT_UNEXPECTED' }));
  });

  it('iou and nms', () => {
    const a = { start_x: 0, start_y: 0, end_x: 10, end_y: 10 },
      b = { start_x: 5, start_y: 0, end_x: 15, end_y: 10 };
    expect(iou(a, b)).toBeCloseTo(50 / 150, 9);
    expect(iou(a, { start_x: 20, start_y: 20, end_x: 30, end_y: 30 })).toBe(0);
    const kept = nms(
      [
        { label: 'x', index: 0, confidence: 0.5, box: b },
        { label: 'x', index: 0, confidence: 0.9, box: a },
      ],
      0.3,
    );
    expect(kept.map((k) => k.confidence)).toEqual([0.9]);
    expect(
      nms(
        [
          { label: 'x', index: 0, confidence: 0.5, box: b },
          { label: 'x', index: 0, confidence: 0.9, box: a },
        ],
        0.5,
      ),
    ).toHaveLength(2);
  });
});

describe('post-processing: classification', () => {
  it('softmax, threshold, top-k and labels', () => {
    const c = ctx([1, 3], [1, 3, 2], { labels: ['a', 'b', 'c'], softmax: true, purpose: 'Classification' });
    const r = classification(c, { confidence: 0, topK: 2 });
    const e = [Math.exp(1), Math.exp(3), Math.exp(2)],
      s = e[0]! + e[1]! + e[2]!;
    expect(r.predictions.map((p) => p.label)).toEqual(['b', 'c']);
    expect(r.predictions[0]!.confidence).toBeCloseTo(e[1]! / s, 9);
    expect(classification({ ...c, softmax: false }).predictions.map((p) => p.confidence)).toEqual([3, 2, 1]);
  });
});
