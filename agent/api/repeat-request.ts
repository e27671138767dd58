import {
  type EncodedBody,
  encodedOf,
  encodeInferResponse,
  type InferRequest,
  parseInferRequest,
  type WireTensor,
} from '../../protocol/kserve.js';

/**
 * The JSON of an app's shared-memory requests, parsed and encoded once. Such an app sends the
 * same few hundred bytes every frame (the same region, offsets, shape and outputs; only the
 * object's contents change), and the agent's answer header is the same every frame too (the
 * same model, version, output shapes and sizes). Parsing and validating that JSON, and building
 * and stringifying the answer's header, was the largest piece of the agent's own work on the
 * zero-copy path (docs/performance.md, "Round 7: zero-copy shared memory"); here a repeat costs
 * a string key and a map lookup.
 *
 * Safe because the key is the request's exact bytes (latin1 maps each byte to one character),
 * so a hit is what parseInferRequest would return for them; only requests whose every input is
 * in shared memory are kept (a tensor sent in the body is a view of that body, which a later
 * request must never see), and they are frozen, so no later stage can change what the next
 * request gets. Errors are never kept: a refused body is parsed (and refused) again each time.
 * Bounded: MAX_ENTRIES bodies of at most MAX_BODY bytes, the oldest dropped first.
 */
const MAX_ENTRIES = 64;
const MAX_BODY = 4096;

const parsed = new Map<string, InferRequest>();
/** The answer header of a kept request, by what else it depends on (model, version, outputs). */
const answers = new WeakMap<InferRequest, { key: string; json: Buffer; contentType: EncodedBody['contentType'] }>();

/** parseInferRequest, or the request parsed earlier from exactly these bytes. */
export function parseRepeatable(body: Uint8Array, headerLength: number | undefined): InferRequest {
  if (body.length > MAX_BODY || (headerLength !== undefined && headerLength !== body.length))
    return parseInferRequest(body, headerLength);
  const key = `${headerLength === undefined ? 'j' : 'h'}${Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('latin1')}`;
  const hit = parsed.get(key);
  if (hit) return hit;
  const request = parseInferRequest(body, headerLength);
  if (Object.keys(request.inputs).length === 0) {
    if (parsed.size >= MAX_ENTRIES) parsed.delete(parsed.keys().next().value!);
    parsed.set(key, deepFreeze(request));
  }
  return request;
}

type Chosen = Parameters<typeof encodeInferResponse>[1];

/** encodeInferResponse, with the header of a kept request reused when nothing it says changed. */
export function encodeRepeatable(
  request: InferRequest,
  meta: { model_name: string; model_version: string; id?: string },
  chosen: Chosen,
): EncodedBody {
  if (!Object.isFrozen(request) || chosen.some((c) => !c.binary && !c.shm)) return encodeInferResponse(meta, chosen);
  let key = `${meta.model_name}\n${meta.model_version}`;
  for (const c of chosen) key += `\n${shapeKey(c.tensor)}`;
  const known = answers.get(request);
  if (known?.key === key) {
    const parts: Uint8Array[] = [known.json];
    for (const c of chosen) if (!c.shm) parts.push(bytesOf(c.tensor));
    // The header bytes are shared with earlier answers: read-only, like every part.
    return encodedOf(parts, known.contentType, parts.length > 1 ? known.json.length : undefined);
  }
  const encoded = encodeInferResponse(meta, chosen);
  answers.set(request, { key, json: encoded.parts[0] as Buffer, contentType: encoded.contentType });
  return encoded;
}

function shapeKey(t: WireTensor): string {
  return `${t.dtype}[${t.shape.join(',')}]${t.data.byteLength}`;
}

function bytesOf(t: WireTensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}
