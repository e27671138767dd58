import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { buildFixture, FIXTURE_KINDS, type Blob } from '../fixtures/onnx/models.js';

/** The generated models compute what their TypeScript references say, on the real onnxruntime. */
function blobWithSquares(w: number, h: number): Blob {
  const data = new Float32Array(3 * h * w).fill(0.1);
  const paint = (ch: number, x1: number, y1: number, x2: number, y2: number, v: number) => {
    for (let y = y1; y < y2; y++) for (let x = x1; x < x2; x++) data[(ch * h + y) * w + x] = v;
  };
  paint(0, 2, 2, 6, 8, 0.9);
  paint(1, w - 6, h - 4, w - 1, h - 1, 0.8);
  paint(2, 4, 4, 6, 6, 0.3); // below the lit threshold: no blue detection
  return { data, shape: [1, 3, h, w] };
}

describe('generated ONNX fixtures', () => {
  for (const kind of FIXTURE_KINDS) {
    it(`${kind}: onnxruntime output equals the TypeScript reference`, async () => {
      const fx = buildFixture(kind);
      const [w, h] = fx.size;
      const blob = blobWithSquares(w, h);
      const session = await ort.InferenceSession.create(fx.bytes);
      try {
        const out = await session.run({ [fx.inputName]: new ort.Tensor('float32', blob.data, blob.shape) });
        const t = out[fx.outputName]!;
        expect(t.dims).toEqual(fx.outputShape);
        const want = fx.expected(blob);
        const got = t.data as Float32Array;
        expect(got.length).toBe(want.length);
        for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i]!, 5);
      } finally {
        await session.release();
      }
    });
  }
});
