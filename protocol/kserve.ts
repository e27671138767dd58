import { OutpostError } from './errors/index.js';

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
const DTYPE_OF: Readonly<Record<string, WireDType>> = Object.fromEntries(
  Object.entries(KSERVE_DATATYPE).map(([d, k]) => [k, d as WireDType]),
);
const ELEMENT_BYTES: Readonly<Record<WireDType, number>> = {
  float32: 4,
  float16: 2,
  uint8: 1,
  int8: 1,
  int32: 4,
  int64: 8,
  bool: 1,
};
/** Valid KServe names the agent cannot run: named in the error so the client knows why. */
const KNOWN_UNSUPPORTED = new Set(['UINT16', 'UINT32', 'UINT64', 'INT16', 'FP64', 'BYTES']);
/** Guards against shapes whose element count overflows or could never fit a body. */
const MAX_ELEMENTS = 2 ** 31 - 1;

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

function bad(key: string, message: string, value?: unknown): OutpostError {
  return new OutpostError('API_BAD_INFER_REQUEST', `${key} ${message}`, value === undefined ? { key } : { key, value });
}

function parseShape(value: unknown, key: string): number[] {
  if (!Array.isArray(value) || value.length > 16)
    throw bad(key, 'must be an array of at most 16 non-negative integers', value);
  for (const d of value) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0)
      throw bad(key, `has ${JSON.stringify(d)}; dimensions are non-negative integers`, value);
  }
  if (elementCount(value) > MAX_ELEMENTS) throw bad(key, 'has more elements than any tensor the agent accepts', value);
  return value as number[];
}

function parseParameters(value: unknown, key: string): InferParameters {
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

/** Region names: what Triton's clients send, bounded, printable; never used as a path. */
const REGION_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;

export function isRegionName(v: unknown): v is string {
  return typeof v === 'string' && REGION_NAME.test(v);
}

/**
 * The shared-memory parameters of a tensor, or undefined when it has none. As in Triton, region
 * and byte size come together (offset defaults to 0); the range is checked against the region
 * by the server, which alone knows it.
 */
function parseShmRef(p: InferParameters, key: string): ShmRef | undefined {
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

/** Flattens nested JSON arrays iteratively (no recursion: a deep array cannot blow the stack). */
function flatten(data: unknown[], limit: number, key: string): unknown[] {
  const out: unknown[] = [];
  const stack: { a: unknown[]; i: number }[] = [{ a: data, i: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    if (top.i >= top.a.length) {
      stack.pop();
      continue;
    }
    const v = top.a[top.i++];
    if (Array.isArray(v)) {
      if (stack.length > 32) throw bad(key, 'nests arrays deeper than 32 levels');
      stack.push({ a: v, i: 0 });
    } else {
      if (out.length >= limit)
        throw new OutpostError('API_SHAPE_MISMATCH', `${key} has more elements than its shape's ${limit}`, {
          key,
          expected: limit,
        });
      out.push(v);
    }
  }
  return out;
}

function allocate(dtype: WireDType, n: number): WireTensorData {
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

function fromJsonData(values: unknown[], dtype: WireDType, key: string): WireTensorData {
  const out = allocate(dtype, values.length);
  const fail = (i: number, want: string): never => {
    throw new OutpostError('API_DTYPE_MISMATCH', `${key}[${i}] is ${JSON.stringify(values[i])}, not ${want}`, {
      key,
      index: i,
    });
  };
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (dtype === 'bool') {
      if (typeof v !== 'boolean') fail(i, 'true or false');
      (out as Uint8Array)[i] = v ? 1 : 0;
    } else if (typeof v !== 'number' || !Number.isFinite(v)) {
      fail(i, 'a finite number');
    } else if (dtype === 'float32') {
      (out as Float32Array)[i] = v;
    } else if (dtype === 'float16') {
      (out as Uint16Array)[i] = floatToHalf(v);
    } else {
      const [lo, hi] = INT_RANGE[dtype];
      if (!Number.isInteger(v) || v < lo || v > hi) fail(i, `an integer within ${KSERVE_DATATYPE[dtype]}`);
      if (dtype === 'int64') (out as BigInt64Array)[i] = BigInt(v);
      else (out as Uint8Array | Int8Array | Int32Array)[i] = v;
    }
  }
  return out;
}
const INT_RANGE: Record<string, [number, number]> = {
  uint8: [0, 255],
  int8: [-128, 127],
  int32: [-(2 ** 31), 2 ** 31 - 1],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

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

function view(dtype: WireDType, buf: ArrayBufferLike, offset: number, n: number): WireTensorData {
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

/** Bytes per element of a dtype (the binary and shared-memory extensions size tensors with it). */
export function elementBytes(dtype: WireDType): number {
  return ELEMENT_BYTES[dtype];
}

function bytesOf(data: WireTensorData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function parseJsonHeader(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (err) {
    throw new OutpostError('API_BAD_JSON', `the request's JSON does not parse: ${(err as Error).message}`);
  }
}

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

function jsonValues(t: WireTensor): (number | boolean)[] {
  const d = t.data;
  if (t.dtype === 'bool') return Array.from(d as Uint8Array, (v) => v !== 0);
  if (t.dtype === 'float16') return Array.from(d as Uint16Array, halfToFloat);
  // INT64 beyond 2^53 loses precision in JSON numbers; the binary path keeps every bit.
  if (d instanceof BigInt64Array) return Array.from(d, (v) => Number(v));
  return Array.from(d as Float32Array);
}

function frame(header: object, chunks: Uint8Array[]): EncodedBody {
  let text = JSON.stringify(header);
  const encoded = (parts: Uint8Array[], contentType: EncodedBody['contentType'], headerLength?: number) => {
    const byteLength = parts.reduce((a, b) => a + b.byteLength, 0);
    return {
      parts,
      byteLength,
      contentType,
      ...(headerLength !== undefined ? { headerLength } : {}),
      get body() {
        return parts.length === 1 ? Buffer.from(parts[0]!) : Buffer.concat(parts, byteLength);
      },
    };
  };
  if (chunks.length === 0) return encoded([Buffer.from(text, 'utf8')], 'application/json');
  // Trailing spaces are valid JSON: padding the header to a multiple of 8 puts the first tensor
  // at an aligned offset, so a receiver that reads the body into an aligned buffer gets views.
  const len = Buffer.byteLength(text);
  text += ' '.repeat((8 - (len % 8)) % 8);
  const json = Buffer.from(text, 'utf8');
  return encoded([json, ...chunks], 'application/octet-stream', json.length);
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
    inputs: Object.entries(inputs).map(([name, t]) => {
      const base = { name, shape: t.shape, datatype: toKServeDatatype(t.dtype) };
      if ('shm' in t) return { ...base, parameters: shmParameters(t.shm) };
      if (!opts.binary) return { ...base, data: jsonValues(t) };
      chunks.push(bytesOf(t.data));
      return { ...base, parameters: { binary_data_size: t.data.byteLength } };
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

function shmParameters(r: ShmRef): InferParameters {
  return {
    shared_memory_region: r.region,
    ...(r.offset !== 0 ? { shared_memory_offset: r.offset } : {}),
    shared_memory_byte_size: r.byteSize,
  };
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

/** IEEE 754 binary32 -> binary16 bits, round to nearest even. */
export function floatToHalf(v: number): number {
  const f = new Float32Array([v]);
  const x = new Uint32Array(f.buffer)[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant = (mant | 0x800000) >>> (1 - e);
    if (mant & 0x1000 && mant & 0x2fff) mant += 0x2000;
    return sign | (mant >>> 13);
  }
  if (mant & 0x1000 && mant & 0x2fff) {
    mant += 0x2000;
    if (mant & 0x800000) {
      mant = 0;
      e += 1;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | (mant >>> 13);
}

export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
