import { describe, expect, it } from 'vitest';
import {
  encodeInferRequest,
  encodeInferResponse,
  floatToHalf,
  halfToFloat,
  parseInferRequest,
  parseInferResponse,
  type WireTensor,
} from '../../protocol/kserve.js';
import { codeOf } from '../helpers/error-code.js';

const tensors: Record<string, WireTensor> = {
  f: { dtype: 'float32', shape: [2, 3], data: Float32Array.from([0.5, -1.25, 3, 1e-3, 7, -0.0078125]) },
  u: { dtype: 'uint8', shape: [4], data: Uint8Array.from([0, 1, 128, 255]) },
  i8: { dtype: 'int8', shape: [2], data: Int8Array.from([-128, 127]) },
  i32: { dtype: 'int32', shape: [1, 2], data: Int32Array.from([-(2 ** 31), 2 ** 31 - 1]) },
  i64: { dtype: 'int64', shape: [2], data: BigInt64Array.from([-5n, 2n ** 40n]) },
  b: { dtype: 'bool', shape: [3], data: Uint8Array.from([1, 0, 1]) },
  h: { dtype: 'float16', shape: [2], data: Uint16Array.from([floatToHalf(1.5), floatToHalf(-2)]) },
};

const json = (v: unknown) => Buffer.from(JSON.stringify(v));

describe('KServe v2 request round trip', () => {
  for (const binary of [false, true]) {
    it(`keeps every dtype's values (${binary ? 'binary' : 'JSON'})`, () => {
      const enc = encodeInferRequest(tensors, { binary });
      expect(enc.contentType).toBe(binary ? 'application/octet-stream' : 'application/json');
      const req = parseInferRequest(enc.body, enc.headerLength);
      for (const [name, t] of Object.entries(tensors)) {
        expect(req.inputs[name]!.dtype).toBe(t.dtype);
        expect(req.inputs[name]!.shape).toEqual(t.shape);
        expect(Array.from(req.inputs[name]!.data as ArrayLike<number>)).toEqual(
          Array.from(t.data as ArrayLike<number>),
        );
      }
    });
  }

  it('accepts nested JSON data and flattens it row-major', () => {
    const r = parseInferRequest(
      json({
        inputs: [
          {
            name: 'x',
            shape: [2, 2],
            datatype: 'FP32',
            data: [
              [1, 2],
              [3, 4],
            ],
          },
        ],
      }),
    );
    expect(Array.from(r.inputs.x!.data as Float32Array)).toEqual([1, 2, 3, 4]);
  });

  it('reads requested outputs and the binary flags', () => {
    const r = parseInferRequest(
      json({
        parameters: { binary_data_output: true },
        inputs: [{ name: 'x', shape: [1], datatype: 'FP32', data: [1] }],
        outputs: [{ name: 'a' }, { name: 'b', parameters: { binary_data: false } }],
      }),
    );
    expect(r.outputs).toEqual([
      { name: 'a', binary: true },
      { name: 'b', binary: false },
    ]);
  });
});

describe('KServe v2 response round trip', () => {
  it('mixes JSON and binary outputs in one body', () => {
    const enc = encodeInferResponse({ model_name: 'a/b', model_version: '2' }, [
      { name: 'f', tensor: tensors.f!, binary: true },
      { name: 'u', tensor: tensors.u!, binary: false },
      { name: 'i64', tensor: tensors.i64!, binary: true },
    ]);
    expect(enc.headerLength).toBeGreaterThan(0);
    const { meta, outputs } = parseInferResponse(enc.body, enc.headerLength);
    expect(meta.model_version).toBe('2');
    expect(Array.from(outputs.f!.data as Float32Array)).toEqual(Array.from(tensors.f!.data as Float32Array));
    expect(Array.from(outputs.u!.data as Uint8Array)).toEqual([0, 1, 128, 255]);
    expect(Array.from(outputs.i64!.data as BigInt64Array)).toEqual([-5n, 2n ** 40n]);
  });
});

describe('fp16 conversion', () => {
  it('is exact for values fp16 represents and rounds others to nearest', () => {
    for (const v of [0, 1, -1, 0.5, 65504, -65504, 2 ** -14, 2 ** -24, 1.5, 1024.5 - 0.5])
      expect(halfToFloat(floatToHalf(v))).toBe(v);
    expect(halfToFloat(floatToHalf(1 + 2 ** -11))).toBe(1); // tie rounds to even
    expect(halfToFloat(floatToHalf(1 + 3 * 2 ** -11))).toBe(1 + 2 ** -9);
    expect(halfToFloat(floatToHalf(1e6))).toBe(Infinity);
    expect(Number.isNaN(halfToFloat(floatToHalf(NaN)))).toBe(true);
  });
});

describe('KServe v2 request refusals name their code', () => {
  const x = { name: 'x', shape: [2], datatype: 'FP32', data: [1, 2] };
  const bin = (header: object, bytes: number[], hl?: number) => {
    const h = json(header);
    return { body: Buffer.concat([h, Buffer.from(bytes)]), hl: hl ?? h.length };
  };
  const cases: [string, () => unknown, string][] = [
    ['not JSON', () => parseInferRequest(Buffer.from('{"inputs": [')), 'API_BAD_JSON'],
    ['a JSON array', () => parseInferRequest(json([x])), 'API_BAD_JSON'],
    ['no inputs', () => parseInferRequest(json({})), 'API_BAD_INFER_REQUEST'],
    ['empty inputs', () => parseInferRequest(json({ inputs: [] })), 'API_BAD_INFER_REQUEST'],
    ['input without name', () => parseInferRequest(json({ inputs: [{ ...x, name: '' }] })), 'API_BAD_INFER_REQUEST'],
    ['repeated input', () => parseInferRequest(json({ inputs: [x, x] })), 'API_BAD_INFER_REQUEST'],
    ['negative dimension', () => parseInferRequest(json({ inputs: [{ ...x, shape: [-2] }] })), 'API_BAD_INFER_REQUEST'],
    [
      'fractional dimension',
      () => parseInferRequest(json({ inputs: [{ ...x, shape: [1.5] }] })),
      'API_BAD_INFER_REQUEST',
    ],
    ['huge shape', () => parseInferRequest(json({ inputs: [{ ...x, shape: [1e6, 1e6] }] })), 'API_BAD_INFER_REQUEST'],
    [
      'unknown datatype',
      () => parseInferRequest(json({ inputs: [{ ...x, datatype: 'FP128' }] })),
      'API_UNKNOWN_DATATYPE',
    ],
    [
      'BYTES datatype',
      () => parseInferRequest(json({ inputs: [{ ...x, datatype: 'BYTES' }] })),
      'API_UNKNOWN_DATATYPE',
    ],
    ['too few values', () => parseInferRequest(json({ inputs: [{ ...x, data: [1] }] })), 'API_SHAPE_MISMATCH'],
    ['too many values', () => parseInferRequest(json({ inputs: [{ ...x, data: [1, 2, 3] }] })), 'API_SHAPE_MISMATCH'],
    ['string value', () => parseInferRequest(json({ inputs: [{ ...x, data: [1, 'a'] }] })), 'API_DTYPE_MISMATCH'],
    [
      'fraction in INT32',
      () => parseInferRequest(json({ inputs: [{ ...x, datatype: 'INT32', data: [1, 2.5] }] })),
      'API_DTYPE_MISMATCH',
    ],
    [
      '300 in UINT8',
      () => parseInferRequest(json({ inputs: [{ ...x, datatype: 'UINT8', data: [1, 300] }] })),
      'API_DTYPE_MISMATCH',
    ],
    [
      'number in BOOL',
      () => parseInferRequest(json({ inputs: [{ ...x, datatype: 'BOOL', data: [1, 0] }] })),
      'API_DTYPE_MISMATCH',
    ],
    [
      'no data',
      () => parseInferRequest(json({ inputs: [{ name: 'x', shape: [2], datatype: 'FP32' }] })),
      'API_BAD_INFER_REQUEST',
    ],
    [
      'deep nesting',
      () =>
        parseInferRequest(
          json({ inputs: [{ ...x, shape: [1], data: JSON.parse('['.repeat(40) + '1' + ']'.repeat(40)) }] }),
        ),
      'API_BAD_INFER_REQUEST',
    ],
    [
      'binary size without header',
      () => parseInferRequest(json({ inputs: [{ ...x, data: undefined, parameters: { binary_data_size: 8 } }] })),
      'API_BINARY_DATA',
    ],
    [
      'binary size not matching shape',
      () => {
        const b = bin(
          { inputs: [{ name: 'x', shape: [2], datatype: 'FP32', parameters: { binary_data_size: 4 } }] },
          [0, 0, 0, 0],
        );
        return parseInferRequest(b.body, b.hl);
      },
      'API_SHAPE_MISMATCH',
    ],
    [
      'truncated binary',
      () => {
        const b = bin(
          { inputs: [{ name: 'x', shape: [2], datatype: 'FP32', parameters: { binary_data_size: 8 } }] },
          [0, 0, 0, 0],
        );
        return parseInferRequest(b.body, b.hl);
      },
      'API_BINARY_DATA',
    ],
    [
      'extra binary bytes',
      () => {
        const b = bin(
          { inputs: [{ name: 'x', shape: [1], datatype: 'FP32', parameters: { binary_data_size: 4 } }] },
          [0, 0, 0, 0, 9],
        );
        return parseInferRequest(b.body, b.hl);
      },
      'API_BINARY_DATA',
    ],
    [
      'header length past the body',
      () => {
        const b = bin({ inputs: [x] }, []);
        return parseInferRequest(b.body, b.hl + 1);
      },
      'API_BAD_HEADER',
    ],
    [
      'header length cutting the JSON',
      () => {
        const b = bin({ inputs: [x] }, []);
        return parseInferRequest(b.body, b.hl - 3);
      },
      'API_BAD_JSON',
    ],
    [
      'both data and binary size',
      () => {
        const b = bin({ inputs: [{ ...x, parameters: { binary_data_size: 8 } }] }, [0, 0, 0, 0, 0, 0, 0, 0]);
        return parseInferRequest(b.body, b.hl);
      },
      'API_BAD_INFER_REQUEST',
    ],
    [
      'non-boolean binary_data',
      () => parseInferRequest(json({ inputs: [x], outputs: [{ name: 'y', parameters: { binary_data: 'yes' } }] })),
      'API_BAD_INFER_REQUEST',
    ],
    [
      'repeated output',
      () => parseInferRequest(json({ inputs: [x], outputs: [{ name: 'y' }, { name: 'y' }] })),
      'API_BAD_INFER_REQUEST',
    ],
    ['id not a string', () => parseInferRequest(json({ id: 5, inputs: [x] })), 'API_BAD_INFER_REQUEST'],
  ];
  for (const [what, fn, code] of cases) it(`${what} -> ${code}`, () => expect(codeOf(fn)).toBe(code));
});
