import { OutpostError } from '../errors/index.js';

/**
 * KServe v2 wire types (the JSON of the `/v2/...` routes), the dtype tables, and the checks every
 * tensor description shares (shape, datatype, parameters), whatever carries its bytes.
 * Tensors here are structurally the runtime's `Tensor` (agent/runtime/backend.ts); protocol/ may
 * not import agent/, so the union is repeated and kept equal.
 */
/**
 * KServe v2 / Open Inference Protocol: the wire types of the agent's `/v2/...` routes, and the one
 * parser and encoder that both the agent's server and the typed client use, JSON tensors and the
 * binary-tensor extension alike.
 *
 * Binary framing (the extension): the body is a JSON header of `Inference-Header-Content-Length`
 * bytes, then the raw little-endian bytes of every tensor whose `parameters.binary_data_size` is
 * set, in the order the tensors appear in the header. The sizes must add up to the body exactly.
 * Tensors here are structurally the runtime's `Tensor` (agent/runtime/backend.ts); protocol/ may
 * not import agent/, so the union is repeated and kept equal.
 */
export type WireDType = 'float32' | 'float16' | 'uint8' | 'int8' | 'int32' | 'int64' | 'bool';

export type WireTensorData = Float32Array | Uint8Array | Int8Array | Int32Array | BigInt64Array | Uint16Array;

export interface WireTensor {
  dtype: WireDType;
  shape: number[];
  data: WireTensorData;
}

/** KServe datatype names for the dtypes the agent can run (BOOL and FP16 travel as bytes/bits). */
export const KSERVE_DATATYPE: Readonly<Record<WireDType, string>> = {
  float32: 'FP32',
  float16: 'FP16',
  uint8: 'UINT8',
  int8: 'INT8',
  int32: 'INT32',
  int64: 'INT64',
  bool: 'BOOL',
};

export const DTYPE_OF: Readonly<Record<string, WireDType>> = Object.fromEntries(
  Object.entries(KSERVE_DATATYPE).map(([d, k]) => [k, d as WireDType]),
);

export const ELEMENT_BYTES: Readonly<Record<WireDType, number>> = {
  float32: 4,
  float16: 2,
  uint8: 1,
  int8: 1,
  int32: 4,
  int64: 8,
  bool: 1,
};

/** Valid KServe names the agent cannot run: named in the error so the client knows why. */
export const KNOWN_UNSUPPORTED = new Set(['UINT16', 'UINT32', 'UINT64', 'INT16', 'FP64', 'BYTES']);

/** Guards against shapes whose element count overflows or could never fit a body. */
export const MAX_ELEMENTS = 2 ** 31 - 1;

export interface TensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

export interface ServerMetadata {
  name: string;
  version: string;
  extensions: string[];
}

export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

export interface InferParameters {
  binary_data_size?: number;
  binary_data?: boolean;
  binary_data_output?: boolean;
  shared_memory_region?: string;
  shared_memory_offset?: number;
  shared_memory_byte_size?: number;
  [k: string]: unknown;
}

/** Where a tensor lives in a registered system shared-memory region (Triton's parameters). */
export interface ShmRef {
  region: string;
  /** Bytes from the start of the region (not of the object). */
  offset: number;
  byteSize: number;
}

/** A tensor that travels by shared memory: its description, and where its bytes are. */
export interface ShmTensor {
  dtype: WireDType;
  shape: number[];
  shm: ShmRef;
}

export interface InferInputJson {
  name: string;
  shape: number[];
  datatype: string;
  parameters?: InferParameters;
  data?: unknown[];
}

export interface InferOutputRequest {
  name: string;
  parameters?: InferParameters;
}

export interface InferRequestJson {
  id?: string;
  parameters?: InferParameters;
  inputs: InferInputJson[];
  outputs?: InferOutputRequest[];
}

export interface InferOutputJson {
  name: string;
  shape: number[];
  datatype: string;
  parameters?: InferParameters;
  data?: (number | boolean)[];
}

export interface InferResponseJson {
  model_name: string;
  model_version?: string;
  id?: string;
  outputs: InferOutputJson[];
}

/** A parsed request: tensors by input name, and which outputs to return and how. */
export interface InferRequest {
  id?: string;
  inputs: Record<string, WireTensor>;
  /** Inputs whose bytes are in shared memory; the server reads them (protocol/ does no I/O). */
  shmInputs: Record<string, ShmTensor>;
  /** null: every output of the model. */
  outputs: { name: string; binary: boolean; shm?: ShmRef }[] | null;
  /** Default for outputs not listed (request-level `binary_data_output`). */
  binaryOutput: boolean;
}

export function toKServeDatatype(dtype: WireDType): string {
  return KSERVE_DATATYPE[dtype];
}

export function dtypeOfDatatype(datatype: unknown, key: string): WireDType {
  if (typeof datatype === 'string' && Object.hasOwn(DTYPE_OF, datatype)) return DTYPE_OF[datatype];
  const why =
    typeof datatype === 'string' && KNOWN_UNSUPPORTED.has(datatype)
      ? ' (valid in KServe, but no agent backend runs it)'
      : '';
  throw new OutpostError(
    'API_UNKNOWN_DATATYPE',
    `${key} ${JSON.stringify(datatype)} is not one of ${Object.keys(DTYPE_OF).join(', ')}${why}`,
    { key, value: datatype },
  );
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Bytes per element of a dtype (the binary and shared-memory extensions size tensors with it). */
export function elementBytes(dtype: WireDType): number {
  return ELEMENT_BYTES[dtype];
}

export function bad(key: string, message: string, value?: unknown): OutpostError {
  return new OutpostError('API_BAD_INFER_REQUEST', `${key} ${message}`, value === undefined ? { key } : { key, value });
}

export function parseShape(value: unknown, key: string): number[] {
  if (!Array.isArray(value) || value.length > 16)
    throw bad(key, 'must be an array of at most 16 non-negative integers', value);
  for (const d of value) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0)
      throw bad(key, `has ${JSON.stringify(d)}; dimensions are non-negative integers`, value);
  }
  if (elementCount(value) > MAX_ELEMENTS) throw bad(key, 'has more elements than any tensor the agent accepts', value);
  return value as number[];
}

export function parseParameters(value: unknown, key: string): InferParameters {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw bad(key, 'must be an object', value);
  const p = value as InferParameters;
  if (
    p.binary_data_size !== undefined &&
    (typeof p.binary_data_size !== 'number' || !Number.isSafeInteger(p.binary_data_size) || p.binary_data_size < 0)
  ) {
    throw bad(`${key}.binary_data_size`, 'must be a non-negative integer', p.binary_data_size);
  }
  for (const k of ['binary_data', 'binary_data_output'] as const) {
    if (p[k] !== undefined && typeof p[k] !== 'boolean') throw bad(`${key}.${k}`, 'must be true or false', p[k]);
  }
  return p;
}

export function allocate(dtype: WireDType, n: number): WireTensorData {
  switch (dtype) {
    case 'float32':
      return new Float32Array(n);
    case 'float16':
      return new Uint16Array(n);
    case 'int8':
      return new Int8Array(n);
    case 'int32':
      return new Int32Array(n);
    case 'int64':
      return new BigInt64Array(n);
    case 'uint8':
    case 'bool':
      return new Uint8Array(n);
  }
}

export function view(dtype: WireDType, buf: ArrayBufferLike, offset: number, n: number): WireTensorData {
  switch (dtype) {
    case 'float32':
      return new Float32Array(buf, offset, n);
    case 'float16':
      return new Uint16Array(buf, offset, n);
    case 'int8':
      return new Int8Array(buf, offset, n);
    case 'int32':
      return new Int32Array(buf, offset, n);
    case 'int64':
      return new BigInt64Array(buf, offset, n);
    case 'uint8':
    case 'bool':
      return new Uint8Array(buf, offset, n);
  }
}
