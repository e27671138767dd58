import { type InferParameters, type ShmRef, bad } from './wire.js';

/**
 * The system shared-memory extension's tensor parameters (Triton's `shared_memory_region`,
 * `shared_memory_offset`, `shared_memory_byte_size`): parsed from requests, written into answers.
 */
/** Region names: what Triton's clients send, bounded, printable; never used as a path. */
export const REGION_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;

export function isRegionName(v: unknown): v is string {
  return typeof v === 'string' && REGION_NAME.test(v);
}

/**
 * The shared-memory parameters of a tensor, or undefined when it has none. As in Triton, region
 * and byte size come together (offset defaults to 0); the range is checked against the region
 * by the server, which alone knows it.
 */
export function parseShmRef(p: InferParameters, key: string): ShmRef | undefined {
  const { shared_memory_region: region, shared_memory_offset: offset, shared_memory_byte_size: size } = p;
  if (region === undefined && size === undefined && offset === undefined) return undefined;
  if (region === undefined || size === undefined)
    throw bad(key, 'needs both shared_memory_region and shared_memory_byte_size (shared_memory_offset is optional)');
  if (!isRegionName(region))
    throw bad(`${key}.shared_memory_region`, 'must be a registered region name (1-128 of A-Z a-z 0-9 _ . : -)', region);
  const count = (v: unknown, k: string) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
      throw bad(`${key}.${k}`, 'must be a non-negative integer', v);
    return v;
  };
  return {
    region,
    offset: offset === undefined ? 0 : count(offset, 'shared_memory_offset'),
    byteSize: count(size, 'shared_memory_byte_size'),
  };
}

export function shmParameters(r: ShmRef): InferParameters {
  return {
    shared_memory_region: r.region,
    ...(r.offset !== 0 ? { shared_memory_offset: r.offset } : {}),
    shared_memory_byte_size: r.byteSize,
  };
}
