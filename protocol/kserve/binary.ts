import { OutpostError } from '../errors/index.js';
import { type WireDType, type WireTensorData, ELEMENT_BYTES, allocate, view } from './wire.js';

/**
 * The binary-tensor extension's framing: the body is a JSON header of
 * `Inference-Header-Content-Length` bytes, then the raw little-endian bytes of every tensor whose
 * `parameters.binary_data_size` is set, in the order the tensors appear in the header. The sizes
 * must add up to the body exactly.
 */
/**
 * Little-endian bytes as a tensor: a view of the same memory when the offset suits the element
 * size (a Float32Array must start at a multiple of 4), else one copy. Receivers that want views
 * place the body so that the first tensor is 8-byte aligned (agent/api/body.ts), and the
 * encoders below pad the JSON header to a multiple of 8 so that the receiver need not know.
 * The view shares the body's memory: the caller owns the body for as long as the tensor lives.
 */
export function fromBytes(bytes: Uint8Array, dtype: WireDType, n: number): WireTensorData {
  const size = ELEMENT_BYTES[dtype];
  if (bytes.byteOffset % size === 0) return view(dtype, bytes.buffer, bytes.byteOffset, n);
  const out = allocate(dtype, n);
  new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(bytes);
  return out;
}

export function bytesOf(data: WireTensorData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

export function parseJsonHeader(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (err) {
    throw new OutpostError('API_BAD_JSON', `the request's JSON does not parse: ${(err as Error).message}`);
  }
}

/**
 * The wire body of an inference request or response, with its framing headers. `parts` are the
 * JSON header and then each binary tensor's own memory, never concatenated: a writer hands them
 * to the socket in one writev. `body` joins them, for callers that want one buffer.
 */
export interface EncodedBody {
  parts: Uint8Array[];
  byteLength: number;
  readonly body: Buffer;
  contentType: 'application/json' | 'application/octet-stream';
  /** Set when any tensor travels as binary: the Inference-Header-Content-Length value. */
  headerLength?: number;
}

/**
 * An EncodedBody with `body` on the prototype. An object literal with its own `get body()`
 * closure got a new hidden class (map) per request; maps live in the old generation, and each
 * one kept its closure, the parts and the header text alive through every scavenge until the
 * next full GC: the 0.5 MB that survived each scavenge of a client and made its pauses 2-7 ms
 * (docs/performance.md, round 6).
 */
class Encoded implements EncodedBody {
  readonly byteLength: number;
  declare readonly headerLength?: number;

  constructor(
    readonly parts: Uint8Array[],
    readonly contentType: EncodedBody['contentType'],
    headerLength?: number,
  ) {
    let n = 0;
    for (const p of parts) n += p.byteLength;
    this.byteLength = n;
    if (headerLength !== undefined) this.headerLength = headerLength;
  }

  get body(): Buffer {
    return this.parts.length === 1 ? Buffer.from(this.parts[0]!) : Buffer.concat(this.parts, this.byteLength);
  }
}

/** A body of ready parts (a header encoded earlier and its tensors: agent/api/repeat-request.ts). */
export function encodedOf(
  parts: Uint8Array[],
  contentType: EncodedBody['contentType'],
  headerLength?: number,
): EncodedBody {
  return new Encoded(parts, contentType, headerLength);
}

export function frame(header: object, chunks: Uint8Array[]): EncodedBody {
  let text = JSON.stringify(header);
  if (chunks.length === 0) return new Encoded([Buffer.from(text, 'utf8')], 'application/json');
  // Trailing spaces are valid JSON: padding the header to a multiple of 8 puts the first tensor
  // at an aligned offset, so a receiver that reads the body into an aligned buffer gets views.
  const len = Buffer.byteLength(text);
  text += ' '.repeat((8 - (len % 8)) % 8);
  const json = Buffer.from(text, 'utf8');
  return new Encoded([json, ...chunks], 'application/octet-stream', json.length);
}
