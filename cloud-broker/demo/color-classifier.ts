import { GraphBuilder } from './onnx-graph.js';

/**
 * The demo's model (also the tests' 'classifier' fixture): a colour classifier small enough to
 * generate in milliseconds, whose right answer follows from its weights. GlobalAveragePool then
 * Gemm: score_i = sum_j W[i][j] * mean(channel j) + B[i]. Each row of W sums to zero, so a grey
 * background adds nothing and the dominant colour of the image wins.
 *
 * Input 'data' [1, 3, H, W] in RGB order (channel 0 = red), hence swaprb=true in its model JSON,
 * as for any RGB-trained model under blobFromImage's BGR convention. Output 'scores' [1, 3].
 */
export const COLOR_LABELS: readonly string[] = ['red', 'green', 'blue'];
export const COLOR_WEIGHTS: readonly number[] = [2, -1, -1, -1, 2, -1, -1, -1, 2];
export const COLOR_BIAS: readonly number[] = [0.1, 0, -0.1];

export function colorClassifierOnnx(size: [number, number]): Uint8Array {
  const [w, h] = size;
  const g = new GraphBuilder();
  const x = g.input('data', [1, 3, h, w]);
  const pooled = g.op('GlobalAveragePool', [x]);
  const flat = g.op('Flatten', [pooled], { axis: 1 });
  // OpenCV 4.6 imports Gemm only with transB=1.
  const out = g.op('Gemm', [flat, g.floats([3, 3], COLOR_WEIGHTS), g.floats([3], COLOR_BIAS)], { transB: 1 });
  g.rename(out, 'scores');
  g.output('scores', [1, 3]);
  return g.toBytes('color_classifier');
}
