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
import { fromBytes, bytesOf, parseJsonHeader, type EncodedBody, frame } from './binary.js';

/** Inference responses: the encoder of the agent's server, and the parser of the typed client. */
/** Encodes a response (the server side); `binary` says per output whether it travels as bytes. */
export function encodeInferResponse(
  meta: { model_name: string; model_version?: string; id?: string },
  outputs: { name: string; tensor: WireTensor; binary: boolean; shm?: ShmRef }[],
): EncodedBody {
  const chunks: Uint8Array[] = [];
  const header: InferResponseJson = {
    ...meta,
    outputs: outputs.map(({ name, tensor, binary, shm }) => {
      const base = { name, shape: tensor.shape, datatype: toKServeDatatype(tensor.dtype) };
      // The server has already written the bytes into the region; the answer says where and how many.
      if (shm) return { ...base, parameters: shmParameters({ ...shm, byteSize: tensor.data.byteLength }) };
      if (!binary) return { ...base, data: jsonValues(tensor) };
      chunks.push(bytesOf(tensor.data));
      return { ...base, parameters: { binary_data_size: tensor.data.byteLength } };
    }),
  };
  return frame(header, chunks);
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
  const meta = parseJsonHeader(body.subarray(0, hl)) as InferResponseJson;
  if (!meta || !Array.isArray(meta.outputs))
    throw new OutpostError('API_BAD_RESPONSE', 'the inference answer has no outputs array');
  let offset = hl;
  const outputs: Record<string, WireTensor> = {};
  const shmOutputs: Record<string, ShmTensor> = {};
  for (const o of meta.outputs) {
    const dtype = dtypeOfDatatype(o.datatype, `outputs.${o.name}.datatype`);
    const n = elementCount(o.shape);
    const size = o.parameters?.binary_data_size;
    const region = o.parameters?.shared_memory_region;
    if (typeof region === 'string') {
      shmOutputs[o.name] = {
        dtype,
        shape: o.shape,
        shm: {
          region,
          offset: Number(o.parameters?.shared_memory_offset ?? 0),
          byteSize: Number(o.parameters?.shared_memory_byte_size ?? n * ELEMENT_BYTES[dtype]),
        },
      };
    } else if (size !== undefined) {
      if (size !== n * ELEMENT_BYTES[dtype] || offset + size > body.length)
        throw new OutpostError(
          'API_BAD_RESPONSE',
          `output ${o.name}: binary_data_size ${size} does not fit the answer`,
        );
      outputs[o.name] = { dtype, shape: o.shape, data: fromBytes(body.subarray(offset, offset + size), dtype, n) };
      offset += size;
    } else {
      outputs[o.name] = { dtype, shape: o.shape, data: fromJsonData(o.data ?? [], dtype, `outputs.${o.name}`) };
    }
  }
  return { meta, outputs, shmOutputs };
}
