import { OutpostError } from '../../protocol/errors/index.js';
import type { DType, Tensor, TensorData, TensorInfo } from './backend.js';

/**
 * Tensor checks every backend shares, so that a bad input gets the same RUNTIME_INPUT_INVALID
 * answer whatever engine sits behind the model. Validation happens here, once, before a tensor
 * reaches a native engine: an engine must never see a buffer shorter than its shape says.
 */
export const DTYPES: readonly DType[] = ['float32', 'float16', 'uint8', 'int8', 'int32', 'int64', 'bool'];

const ARRAY_OF: Record<DType, new (n: number) => TensorData> = {
  float32: Float32Array,
  float16: Uint16Array,
  uint8: Uint8Array,
  int8: Int8Array,
  int32: Int32Array,
  int64: BigInt64Array,
  bool: Uint8Array,
};

export function isDType(v: unknown): v is DType {
  return typeof v === 'string' && (DTYPES as readonly string[]).includes(v);
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function allocate(dtype: DType, shape: number[]): Tensor {
  return { dtype, shape, data: new ARRAY_OF[dtype](elementCount(shape)) };
}

/** The typed array class that carries a dtype (float16 travels as raw Uint16 bits). */
export function arrayClassOf(dtype: DType): new (n: number) => TensorData {
  return ARRAY_OF[dtype];
}

/** The concrete shape a TensorInfo asks for, with dynamic dimensions set to `fill`. */
export function concreteShape(info: TensorInfo, fill = 1): number[] {
  return info.shape.map((d) => (d === null ? fill : d));
}

/**
 * Checks a set of named input tensors against a model's declared inputs: every declared input is
 * present, nothing else is, and each has the declared dtype, a compatible shape (dynamic
 * dimensions accept any positive size) and exactly as many elements as its shape.
 */
export function validateInputs(declared: readonly TensorInfo[], inputs: Record<string, Tensor>): void {
  if (typeof inputs !== 'object' || inputs === null) {
    throw new OutpostError('RUNTIME_INPUT_INVALID', 'inputs must be an object of named tensors');
  }
  const names = new Set(declared.map((d) => d.name));
  for (const name of Object.keys(inputs)) {
    if (!names.has(name)) {
      throw new OutpostError(
        'RUNTIME_INPUT_INVALID',
        `unknown input "${name}"; the model's inputs are: ${[...names].join(', ')}`,
        { input: name, expected: [...names] },
      );
    }
  }
  for (const info of declared) {
    const t = inputs[info.name];
    if (t === undefined) {
      throw new OutpostError(
        'RUNTIME_INPUT_INVALID',
        `input "${info.name}" is missing; send a ${info.dtype} tensor of shape ${showShape(info.shape)}`,
        { input: info.name },
      );
    }
    validateTensor(info, t);
  }
}

function validateTensor(info: TensorInfo, t: Tensor): void {
  const at = { input: info.name, expected: { dtype: info.dtype, shape: info.shape } };
  if (t.dtype !== info.dtype) {
    throw new OutpostError(
      'RUNTIME_INPUT_INVALID',
      `input "${info.name}" has dtype ${String(t.dtype)}; the model wants ${info.dtype}`,
      { ...at, dtype: t.dtype },
    );
  }
  if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d > 0)) {
    throw new OutpostError(
      'RUNTIME_INPUT_INVALID',
      `input "${info.name}" has shape ${JSON.stringify(t.shape)}; dimensions must be positive integers`,
      { ...at, shape: t.shape },
    );
  }
  const fits = t.shape.length === info.shape.length && info.shape.every((d, i) => d === null || d === t.shape[i]);
  if (!fits) {
    throw new OutpostError(
      'RUNTIME_INPUT_INVALID',
      `input "${info.name}" has shape ${showShape(t.shape)}; the model wants ${showShape(info.shape)}`,
      { ...at, shape: t.shape },
    );
  }
  if (!(t.data instanceof ARRAY_OF[info.dtype])) {
    throw new OutpostError(
      'RUNTIME_INPUT_INVALID',
      `input "${info.name}" data must be a ${ARRAY_OF[info.dtype].name} for dtype ${info.dtype}`,
      at,
    );
  }
  const n = elementCount(t.shape);
  if (t.data.length !== n) {
    throw new OutpostError(
      'RUNTIME_INPUT_INVALID',
      `input "${info.name}" has ${t.data.length} elements; shape ${showShape(t.shape)} needs ${n}`,
      { ...at, length: t.data.length },
    );
  }
}

export function showShape(shape: readonly (number | null)[]): string {
  return `[${shape.map((d) => (d === null ? '?' : String(d))).join(',')}]`;
}
