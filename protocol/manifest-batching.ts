import type { OutpostError } from './errors/index.js';

/**
 * `dynamic_batching` in `model_parameters` (not a seed field; docs/runtime.md, "Dynamic
 * batching"): when several requests for the same model version wait while the model computes,
 * the runtime runs them as one batch along the first input dimension and splits the outputs back.
 * The names are Triton's: `max_batch_size` (at model level in Triton's config), and
 * `max_queue_delay_microseconds` and `preferred_batch_size` (in its `dynamic_batching` block).
 * The block's presence turns batching on, as in Triton; absent (the default) means every request
 * runs alone, because batching trades a single request's latency for throughput.
 */
export interface DynamicBatching {
  /** Largest first dimension of one run (the sum over the requests merged): 2-1024. */
  max_batch_size: number;
  /**
   * How long a waiting request may wait for others to join its batch while the model is busy with
   * another run (0-1,000,000). Default 0: a batch takes exactly what queued while the model was
   * busy. A model that is idle runs a request at once, whatever this says.
   */
  max_queue_delay_microseconds: number;
  /** Batch sizes to prefer (each 1..max_batch_size); absent when not given. */
  preferred_batch_size?: number[];
}

export const BATCHING_KEY = 'dynamic_batching';
const KEYS = ['max_batch_size', 'max_queue_delay_microseconds', 'preferred_batch_size'];

type Invalid = (key: string, value: unknown, expected: string) => OutpostError;

const isInt = (v: unknown, lo: number, hi: number): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;

/**
 * The block, checked once (the manifest parser calls this): undefined for absent, null, "" or
 * `false`; otherwise every key is checked and an unknown key is refused (a misspelt key would
 * silently leave batching at a value the developer did not mean). `invalid` builds the parser's
 * MODEL_FIELD_INVALID with the key path.
 */
export function parseDynamicBatching(v: unknown, invalid: Invalid): DynamicBatching | undefined {
  if (v === undefined || v === null || v === '' || v === false) return undefined;
  const key = (k: string) => `${BATCHING_KEY}.${k}`;
  if (typeof v !== 'object' || Array.isArray(v))
    throw invalid(BATCHING_KEY, v, 'an object such as {"max_batch_size": 8} (or no key at all: batching off)');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!KEYS.includes(k)) throw invalid(key(k), o[k], `no such key; ${BATCHING_KEY} takes ${KEYS.join(', ')}`);
  const max = o.max_batch_size;
  if (!isInt(max, 2, 1024)) throw invalid(key('max_batch_size'), max, 'an integer 2-1024 (required)');
  const delay = o.max_queue_delay_microseconds ?? 0;
  if (!isInt(delay, 0, 1_000_000))
    throw invalid(key('max_queue_delay_microseconds'), delay, 'an integer 0-1000000 (default 0)');
  const out: DynamicBatching = { max_batch_size: max, max_queue_delay_microseconds: delay };
  const pref = o.preferred_batch_size;
  if (pref !== undefined && pref !== null) {
    if (!Array.isArray(pref) || pref.length === 0 || !pref.every((p) => isInt(p, 1, max)))
      throw invalid(key('preferred_batch_size'), pref, `a list of integers 1-${max} (max_batch_size)`);
    out.preferred_batch_size = [...new Set(pref as number[])].sort((a, b) => a - b);
  }
  return out;
}
