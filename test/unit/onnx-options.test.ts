import { describe, expect, it } from 'vitest';
import { autoIntraOpThreads, sessionOptionsFor } from '../../agent/runtime/backends/onnx-options.js';

describe('sessionOptionsFor', () => {
  it('leaves the event loop a core when sessions run in workers, and never goes below one thread', () => {
    expect(autoIntraOpThreads({ workers: 1 }, 2)).toBe(1);
    expect(autoIntraOpThreads({ workers: 1 }, 8)).toBe(7);
    expect(autoIntraOpThreads({ workers: 1 }, 1)).toBe(1);
    expect(autoIntraOpThreads({ workers: 0 }, 2)).toBe(2);
  });

  it('maps the settings onto onnxruntime options, spinning off', () => {
    expect(sessionOptionsFor({ intraOpThreads: 3, interOpThreads: 2, executionMode: 'parallel' }, 8)).toEqual({
      graphOptimizationLevel: 'all',
      intraOpNumThreads: 3,
      interOpNumThreads: 2,
      executionMode: 'parallel',
      extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
    });
    expect(sessionOptionsFor({}, 4).intraOpNumThreads).toBe(3);
    expect(sessionOptionsFor({ workers: 0 }, 4).intraOpNumThreads).toBe(4);
  });
});
