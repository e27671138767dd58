import { OutpostError } from '../errors/index.js';
import {
  type WireTensor,
  ELEMENT_BYTES,
  type ShmRef,
  type ShmTensor,
  type InferInputJson,
  type InferOutputRequest,
  type InferRequestJson,
  type InferRequest,
  toKServeDatatype,
  dtypeOfDatatype,
  elementCount,
  bad,
  parseShape,
  parseParameters,
} from './wire.js';
import { parseShmRef, shmParameters } from './shm-parameters.js';
import { flatten, fromJsonData, jsonValues } from './json.js';
import { fromBytes, bytesOf, parseJsonHeader, type EncodedBody, frame } from './binary.js';

/** Inference requests: the one parser the agent's server uses, and the encoder of the typed client. */
/**
 * Parses an inference request body. `headerLength` is the value of Inference-Header-Content-Length
 * (undefined for a plain JSON body). Throws OutpostError with an API_* code naming the bad field.
 */
export function parseInferRequest(body: Uint8Array, headerLength?: number): InferRequest {
  if (
    headerLength !== undefined &&
    (!Number.isSafeInteger(headerLength) || headerLength < 0 || headerLength > body.length)
  ) {
    throw new OutpostError(
      'API_BAD_HEADER',
      `Inference-Header-Content-Length ${headerLength} must be an integer from 0 to the body's ${body.length} bytes`,
      { header: 'inference-header-content-length', value: headerLength },
    );
  }
  const hl = headerLength ?? body.length;
  const raw = parseJsonHeader(body.subarray(0, hl));
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new OutpostError('API_BAD_JSON', 'the request must be a JSON object with "inputs"');
  const r = raw as Partial<InferRequestJson>;
  if (r.id !== undefined && typeof r.id !== 'string') throw bad('id', 'must be a string', r.id);
  const params = parseParameters(r.parameters, 'parameters');
  if (!Array.isArray(r.inputs) || r.inputs.length === 0)
    throw bad('inputs', 'must be a non-empty array of {name, shape, datatype, data}');

  let offset = hl;
  const inputs: Record<string, WireTensor> = {};
  const shmInputs: Record<string, ShmTensor> = {};
  r.inputs.forEach((inp: unknown, i) => {
    const key = `inputs[${i}]`;
    if (inp === null || typeof inp !== 'object' || Array.isArray(inp)) throw bad(key, 'must be an object');
    const x = inp as Partial<InferInputJson>;
    if (typeof x.name !== 'string' || x.name === '') throw bad(`${key}.name`, 'must be a non-empty string', x.name);
    if (Object.hasOwn(inputs, x.name) || Object.hasOwn(shmInputs, x.name))
      throw bad(`${key}.name`, `repeats input "${x.name}"`, x.name);
    const shape = parseShape(x.shape, `${key}.shape`);
    const dtype = dtypeOfDatatype(x.datatype, `${key}.datatype`);
    const p = parseParameters(x.parameters, `${key}.parameters`);
    const n = elementCount(shape);
    const shm = parseShmRef(p, `${key}.parameters`);
    if (shm) {
      if (x.data !== undefined || p.binary_data_size !== undefined)
        throw bad(key, 'has shared-memory parameters and also data or binary_data_size; send one');
      const want = n * ELEMENT_BYTES[dtype];
      if (shm.byteSize !== want)
        throw new OutpostError(
          'API_SHAPE_MISMATCH',
          `${key} shared_memory_byte_size is ${shm.byteSize} bytes, but shape [${shape}] of ${x.datatype} needs ${want}`,
          { key, expected: want, got: shm.byteSize },
        );
      shmInputs[x.name] = { dtype, shape, shm };
    } else if (p.binary_data_size !== undefined) {
      if (headerLength === undefined)
        throw new OutpostError(
          'API_BINARY_DATA',
          `${key} has binary_data_size but the request has no Inference-Header-Content-Length header`,
          { key },
        );
      if (x.data !== undefined) throw bad(key, 'has both data and binary_data_size; send one');
      const want = n * ELEMENT_BYTES[dtype];
      if (p.binary_data_size !== want) {
        throw new OutpostError(
          'API_SHAPE_MISMATCH',
          `${key} binary_data_size is ${p.binary_data_size} bytes, but shape [${shape}] of ${x.datatype} needs ${want}`,
          { key, expected: want, got: p.binary_data_size },
        );
      }
      if (offset + want > body.length) {
        throw new OutpostError(
          'API_BINARY_DATA',
          `${key} "${x.name}" needs ${want} bytes at offset ${offset}, but the body ends at ${body.length} (truncated?)`,
          { key, offset, size: want, bodyLength: body.length },
        );
      }
      inputs[x.name] = { dtype, shape, data: fromBytes(body.subarray(offset, offset + want), dtype, n) };
      offset += want;
    } else {
      if (!Array.isArray(x.data)) throw bad(`${key}.data`, 'must be an array (or set parameters.binary_data_size)');
      const flat = flatten(x.data, n, `${key}.data`);
      if (flat.length !== n)
        throw new OutpostError(
          'API_SHAPE_MISMATCH',
          `${key}.data has ${flat.length} elements, but shape [${shape}] needs ${n}`,
          { key, expected: n, got: flat.length },
        );
      inputs[x.name] = { dtype, shape, data: fromJsonData(flat, dtype, `${key}.data`) };
    }
  });
  if (offset !== body.length) {
    throw new OutpostError(
      'API_BINARY_DATA',
      `the body has ${body.length - offset} bytes after the last binary input; binary_data_size values must add up to the body`,
      { extra: body.length - offset },
    );
  }

  let outputs: InferRequest['outputs'] = null;
  if (r.outputs !== undefined) {
    if (!Array.isArray(r.outputs)) throw bad('outputs', 'must be an array of {name, parameters}');
    const seen = new Set<string>();
    outputs = r.outputs.map((o: unknown, i) => {
      const key = `outputs[${i}]`;
      if (o === null || typeof o !== 'object' || typeof (o as InferOutputRequest).name !== 'string')
        throw bad(key, 'must be an object with a string name');
      const { name } = o as InferOutputRequest;
      if (seen.has(name)) throw bad(`${key}.name`, `repeats output "${name}"`, name);
      seen.add(name);
      const p = parseParameters((o as InferOutputRequest).parameters, `${key}.parameters`);
      const shm = parseShmRef(p, `${key}.parameters`);
      if (shm) return { name, binary: false, shm };
      return { name, binary: p.binary_data ?? params.binary_data_output ?? false };
    });
  }
  return { id: r.id, inputs, shmInputs, outputs, binaryOutput: params.binary_data_output ?? false };
}

/** Encodes tensors as a request (the client side). `binary` sends every input as raw bytes. */
export function encodeInferRequest(
  inputs: Record<string, WireTensor | ShmTensor>,
  opts: {
    binary?: boolean;
    outputs?: { name: string; binary?: boolean; shm?: ShmRef }[];
    binaryOutput?: boolean;
    id?: string;
  } = {},
): EncodedBody {
  const chunks: Uint8Array[] = [];
  const header: InferRequestJson = {
    ...(opts.id !== undefined ? { id: opts.id } : {}),
    ...(opts.binaryOutput !== undefined ? { parameters: { binary_data_output: opts.binaryOutput } } : {}),
    // Each object is written out in full: `{ ...base, more }` made every one survive the young
    // generation's collections on Node 20 (docs/performance.md, round 6).
    inputs: Object.entries(inputs).map(([name, t]) => {
      const shape = t.shape;
      const datatype = toKServeDatatype(t.dtype);
      if ('shm' in t) return { name, shape, datatype, parameters: shmParameters(t.shm) };
      if (!opts.binary) return { name, shape, datatype, data: jsonValues(t) };
      chunks.push(bytesOf(t.data));
      return { name, shape, datatype, parameters: { binary_data_size: t.data.byteLength } };
    }),
    ...(opts.outputs
      ? {
          outputs: opts.outputs.map((o) =>
            o.shm
              ? { name: o.name, parameters: shmParameters(o.shm) }
              : o.binary === undefined
                ? { name: o.name }
                : { name: o.name, parameters: { binary_data: o.binary } },
          ),
        }
      : {}),
  };
  return frame(header, chunks);
}
