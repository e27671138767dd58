import { describe, expect, it } from 'vitest';
import type { OutpostError } from '../../protocol/errors/index.js';
import { parseModelManifest, toModelJson } from '../../protocol/manifest.js';

/** `dynamic_batching` in model_parameters (protocol/manifest-batching.ts), through the one manifest parser. */
const base = { framework_type: 'onnx', purpose: 'Classification', model_file: 'm.onnx', size: [224, 224] };
const parse = (dynamic_batching: unknown) =>
  parseModelManifest({ id: 'alice/cls', model_parameters: { ...base, dynamic_batching } }).model_parameters
    .dynamic_batching;

describe('dynamic_batching in the model JSON', () => {
  it('is off when absent or unset, and leaves no key behind', () => {
    for (const unset of [undefined, null, '', false]) {
      const m = parseModelManifest({ id: 'alice/cls', model_parameters: { ...base, dynamic_batching: unset } });
      expect('dynamic_batching' in m.model_parameters).toBe(false);
    }
  });

  it("takes Triton's names with their defaults, and writes them back", () => {
    expect(parse({ max_batch_size: 8 })).toEqual({ max_batch_size: 8, max_queue_delay_microseconds: 0 });
    expect(parse({ max_batch_size: 16, max_queue_delay_microseconds: 500, preferred_batch_size: [8, 4, 8] })).toEqual({
      max_batch_size: 16,
      max_queue_delay_microseconds: 500,
      preferred_batch_size: [4, 8],
    });
    const m = parseModelManifest({
      id: 'alice/cls',
      model_parameters: { ...base, dynamic_batching: { max_batch_size: 4 } },
    });
    const written = toModelJson(m).model_parameters as Record<string, unknown>;
    expect(written.dynamic_batching).toEqual({ max_batch_size: 4, max_queue_delay_microseconds: 0 });
    expect(parseModelManifest(toModelJson(m))).toEqual(m);
  });

  it.each([
    [true, 'dynamic_batching', 'an object'],
    [[8], 'dynamic_batching', 'an object'],
    [{}, 'dynamic_batching.max_batch_size', 'an integer 2-1024'],
    [{ max_batch_size: 1 }, 'dynamic_batching.max_batch_size', 'an integer 2-1024'],
    [{ max_batch_size: 2.5 }, 'dynamic_batching.max_batch_size', 'an integer 2-1024'],
    [{ max_batch_size: 4096 }, 'dynamic_batching.max_batch_size', 'an integer 2-1024'],
    [{ max_batch_size: '8' }, 'dynamic_batching.max_batch_size', 'an integer 2-1024'],
    [
      { max_batch_size: 8, max_queue_delay_microseconds: -1 },
      'dynamic_batching.max_queue_delay_microseconds',
      '0-1000000',
    ],
    [
      { max_batch_size: 8, max_queue_delay_microseconds: 2e6 },
      'dynamic_batching.max_queue_delay_microseconds',
      '0-1000000',
    ],
    [{ max_batch_size: 8, preferred_batch_size: [] }, 'dynamic_batching.preferred_batch_size', 'integers 1-8'],
    [{ max_batch_size: 8, preferred_batch_size: [16] }, 'dynamic_batching.preferred_batch_size', 'integers 1-8'],
    [{ max_batch_size: 8, preferred_batch_size: 4 }, 'dynamic_batching.preferred_batch_size', 'integers 1-8'],
    [{ max_batch_size: 8, max_queue_delay: 100 }, 'dynamic_batching.max_queue_delay', 'no such key'],
  ])('refuses %j with MODEL_FIELD_INVALID naming %s', (value, key, expected) => {
    try {
      parse(value);
      throw new Error('no throw');
    } catch (err) {
      expect((err as OutpostError).code).toBe('MODEL_FIELD_INVALID');
      expect((err as OutpostError).details).toMatchObject({ key });
      expect((err as Error).message).toContain(`"${key}"`);
      expect((err as Error).message).toContain(expected);
    }
  });
});
