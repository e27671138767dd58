import { type EncodedBody, encodeInferRequest, type ShmTensor, type WireTensor } from '../../protocol/kserve.js';

/**
 * The client's side of agent/api/repeat-request.ts: a request whose every input is in shared
 * memory carries no tensor bytes, and an app sends the same one every frame (same region,
 * offset, shape, outputs), so its encoded body is kept and sent again. The key spells out
 * everything encodeInferRequest reads (names length-prefixed, so no two requests share a key);
 * an option or tensor field added to encodeInferRequest must join the key here too. The kept parts
 * are read-only buffers, written to the socket as they are. At most MAX_ENTRIES.
 */
const MAX_ENTRIES = 32;
const kept = new Map<string, EncodedBody>();

type Options = NonNullable<Parameters<typeof encodeInferRequest>[1]>;

export function encodeRequest(inputs: Record<string, WireTensor | ShmTensor>, opts: Options): EncodedBody {
  let key = `${opts.binary}|${opts.binaryOutput}|${opts.id === undefined ? '-' : `${opts.id.length}:${opts.id}`}`;
  for (const name in inputs) {
    const t = inputs[name]!;
    if (!('shm' in t) || !plain(t.shape, t.shm)) return encodeInferRequest(inputs, opts);
    key += `|${name.length}:${name}${t.dtype}[${t.shape.join(',')}]${ref(t.shm)}`;
  }
  if (opts.outputs)
    for (const o of opts.outputs) {
      if (o.shm && !plain([], o.shm)) return encodeInferRequest(inputs, opts);
      key += `|o${o.name.length}:${o.name}${o.binary}${o.shm ? ref(o.shm) : '-'}`;
    }
  else key += '|*';
  const hit = kept.get(key);
  if (hit) return hit;
  const enc = encodeInferRequest(inputs, opts);
  if (kept.size >= MAX_ENTRIES) kept.delete(kept.keys().next().value!);
  kept.set(key, enc);
  return enc;
}

/** Numbers only (a plain-JavaScript caller's "0" would spell the same key as 0 but encode otherwise). */
function plain(shape: readonly unknown[], r: ShmTensor['shm']): boolean {
  return (
    typeof r.region === 'string' &&
    typeof r.offset === 'number' &&
    typeof r.byteSize === 'number' &&
    shape.every((d) => typeof d === 'number')
  );
}

function ref(r: ShmTensor['shm']): string {
  return `@${r.region.length}:${r.region}+${r.offset}#${r.byteSize}`;
}
