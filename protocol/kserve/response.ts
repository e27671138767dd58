import { OutpostError } from '../errors/index.js';
import {
  type WireTensor,
  ELEMENT_BYTES,
  type ShmRef,
  type ShmTensor,
  type InferResponseJson,
  toKServeDatatype,
  dtypeOfDatatype,
  elementCount,
} from './wire.js';
import { shmParameters } from './shm-parameters.js';
import { fromJsonData, jsonValues } from './json.js';
import { fromBytes, bytesOf, type EncodedBody, frame } from './binary.js';

/** Inference responses: the encoder of the agent's server, and the parser of the typed client. */
/** Encodes a response (the server side); `binary` says per output whether it travels as bytes. */
export function encodeInferResponse(
  meta: { model_name: string; model_version?: string; id?: string },
  outputs: { name: string; tensor: WireTensor; binary: boolean; shm?: ShmRef }[],
): EncodedBody {
  const chunks: Uint8Array[] = [];
  // Every object is written out in full: `{ ...base, more }` made each one survive the young
  // generation's collections on Node 20, which made the scavenges of both the agent and the
  // client slow (docs/performance.md, round 6). Spreading fresh literals is harmless.
  const header: InferResponseJson = {
    model_name: meta.model_name,
    ...(meta.model_version !== undefined ? { model_version: meta.model_version } : {}),
    ...(meta.id !== undefined ? { id: meta.id } : {}),
    outputs: outputs.map(({ name, tensor, binary, shm }) => {
      const shape = tensor.shape;
      const datatype = toKServeDatatype(tensor.dtype);
      // The server has already written the bytes into the region; the answer says where and how many.
      if (shm)
        return {
          name,
          shape,
          datatype,
          parameters: shmParameters({ region: shm.region, offset: shm.offset, byteSize: tensor.data.byteLength }),
        };
      if (!binary) return { name, shape, datatype, data: jsonValues(tensor) };
      chunks.push(bytesOf(tensor.data));
      return { name, shape, datatype, parameters: { binary_data_size: tensor.data.byteLength } };
    }),
  };
  return frame(header, chunks);
}

/** One output of a response header, and where its data is: after the header, in a region, or inline. */
export type ResponseOutput = { name: string; dtype: WireTensor['dtype']; shape: number[]; n: number } & (
  | { kind: 'binary'; byteSize: number }
  | { kind: 'shm'; shm: ShmRef }
  | { kind: 'json'; values: unknown[] }
);

/**
 * The JSON header of a response (the whole body when it has no binary tensors). The client is the
 * one reading it, so a header that does not parse is the answer's fault: API_BAD_RESPONSE.
 */
export function parseInferResponseHeader(bytes: Uint8Array): InferResponseJson {
  let meta: InferResponseJson;
  try {
    meta = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (err) {
    throw new OutpostError(
      'API_BAD_RESPONSE',
      `the inference answer's JSON header does not parse: ${(err as Error).message}`,
    );
  }
  if (!meta || !Array.isArray(meta.outputs))
    throw new OutpostError('API_BAD_RESPONSE', 'the inference answer has no outputs array');
  return meta;
}

/**
 * The outputs of a response header, checked: a known datatype, and binary sizes that match the
 * shape. Binary outputs follow the header in this order (the client's streaming reader,
 * agent/client/output-targets.ts, places them as they arrive).
 */
export function responseOutputs(meta: InferResponseJson): ResponseOutput[] {
  return meta.outputs.map((o) => {
    const dtype = dtypeOfDatatype(o.datatype, `outputs.${o.name}.datatype`);
    const n = elementCount(o.shape);
    // Written out in full rather than `{ ...base, kind }`: see encodeInferResponse.
    const size = o.parameters?.binary_data_size;
    const region = o.parameters?.shared_memory_region;
    if (typeof region === 'string')
      return {
        name: o.name,
        dtype,
        shape: o.shape,
        n,
        kind: 'shm' as const,
        shm: {
          region,
          offset: Number(o.parameters?.shared_memory_offset ?? 0),
          byteSize: Number(o.parameters?.shared_memory_byte_size ?? n * ELEMENT_BYTES[dtype]),
        },
      };
    if (size === undefined)
      return { name: o.name, dtype, shape: o.shape, n, kind: 'json' as const, values: o.data ?? [] };
    if (size !== n * ELEMENT_BYTES[dtype])
      throw new OutpostError('API_BAD_RESPONSE', `output ${o.name}: binary_data_size ${size} does not fit the answer`);
    return { name: o.name, dtype, shape: o.shape, n, kind: 'binary' as const, byteSize: size };
  });
}

/**
 * Parses a response (the client side) back into tensors by output name; outputs the server wrote
 * into shared memory come back in `shmOutputs` (the client reads them from its own mapping).
 */
export function parseInferResponse(
  body: Uint8Array,
  headerLength?: number,
): { meta: InferResponseJson; outputs: Record<string, WireTensor>; shmOutputs: Record<string, ShmTensor> } {
  const hl = headerLength ?? body.length;
  if (!Number.isSafeInteger(hl) || hl < 0 || hl > body.length) {
    throw new OutpostError(
      'API_BAD_RESPONSE',
      `Inference-Header-Content-Length ${headerLength} does not fit the ${body.length}-byte answer`,
    );
  }
  const meta = parseInferResponseHeader(body.subarray(0, hl));
  let offset = hl;
  const outputs: Record<string, WireTensor> = {};
  const shmOutputs: Record<string, ShmTensor> = {};
  for (const o of responseOutputs(meta)) {
    if (o.kind === 'shm') {
      shmOutputs[o.name] = { dtype: o.dtype, shape: o.shape, shm: o.shm };
    } else if (o.kind === 'binary') {
      if (offset + o.byteSize > body.length)
        throw new OutpostError(
          'API_BAD_RESPONSE',
          `output ${o.name}: binary_data_size ${o.byteSize} does not fit the answer`,
        );
      outputs[o.name] = {
        dtype: o.dtype,
        shape: o.shape,
        data: fromBytes(body.subarray(offset, offset + o.byteSize), o.dtype, o.n),
      };
      offset += o.byteSize;
    } else {
      outputs[o.name] = { dtype: o.dtype, shape: o.shape, data: fromJsonData(o.values, o.dtype, `outputs.${o.name}`) };
    }
  }
  return { meta, outputs, shmOutputs };
}
