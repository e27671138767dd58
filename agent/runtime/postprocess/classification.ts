import { OutpostError } from '../../../protocol/errors/index.js';
import { floatOutput, labelOf, softmax } from './common.js';
import type { ClassificationResult, PostContext, PostOptions } from './types.js';

/**
 * Scores per class (any shape whose elements are the classes, e.g. [1, C] or [1, C, 1, 1]),
 * softmax when the model JSON says so, then the classes at or above the confidence, best first.
 */
export function classification(ctx: PostContext, opts: PostOptions = {}): ClassificationResult {
  const t = floatOutput(ctx);
  const n = t.data.length;
  if (n === 0) throw new OutpostError('RUNTIME_OUTPUT_UNEXPECTED', 'the classifier produced an empty output');
  // A label file longer or shorter than the scores is common (a background line); missing
  // labels read as class_<i> rather than failing a working model.
  const scores = ctx.softmax ? softmax(t.data) : Float64Array.from(t.data);
  const min = opts.confidence ?? 0.3;
  const predictions = Array.from(scores, (confidence, index) => ({
    label: labelOf(ctx.labels, index),
    index,
    confidence,
  }))
    .filter((p) => p.confidence >= min)
    .sort((a, b) => b.confidence - a.confidence || a.index - b.index)
    .slice(0, opts.topK ?? n);
  return { purpose: 'Classification', predictions, duration: ctx.duration };
}
