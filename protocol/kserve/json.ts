import { OutpostError } from '../errors/index.js';
import { type WireDType, type WireTensorData, type WireTensor, KSERVE_DATATYPE, bad, allocate } from './wire.js';

/** JSON tensors: nested `data` arrays to typed arrays and back, FP16 as numbers. */
/** Flattens nested JSON arrays iteratively (no recursion: a deep array cannot blow the stack). */
export function flatten(data: unknown[], limit: number, key: string): unknown[] {
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

export function fromJsonData(values: unknown[], dtype: WireDType, key: string): WireTensorData {
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

export const INT_RANGE: Record<string, [number, number]> = {
  uint8: [0, 255],
  int8: [-128, 127],
  int32: [-(2 ** 31), 2 ** 31 - 1],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

export function jsonValues(t: WireTensor): (number | boolean)[] {
  const d = t.data;
  if (t.dtype === 'bool') return Array.from(d as Uint8Array, (v) => v !== 0);
  if (t.dtype === 'float16') return Array.from(d as Uint16Array, halfToFloat);
  // INT64 beyond 2^53 loses precision in JSON numbers; the binary path keeps every bit.
  if (d instanceof BigInt64Array) return Array.from(d, (v) => Number(v));
  return Array.from(d as Float32Array);
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
