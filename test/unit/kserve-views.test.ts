import { describe, expect, it } from 'vitest';
import {
  encodeInferRequest,
  encodeInferResponse,
  parseInferRequest,
  parseInferResponse,
} from '../../protocol/kserve.js';

/**
 * Binary tensors are views of the body, not copies, whenever their offset suits the element
 * size; the encoders pad the JSON header to a multiple of 8 so that a receiver reading into an
 * aligned buffer always gets views. A misaligned body still parses (one copy).
 */
const x = { dtype: 'float32' as const, shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) };
const ids = { dtype: 'int64' as const, shape: [2], data: BigInt64Array.from([7n, -8n]) };

describe('binary tensors as views', () => {
  it('pads the header to 8 bytes and keeps the parts unjoined', () => {
    const enc = encodeInferRequest({ x, ids }, { binary: true });
    expect(enc.headerLength! % 8).toBe(0);
    expect(enc.parts).toHaveLength(3);
    expect(enc.parts[1]!.buffer).toBe(x.data.buffer);
    expect(enc.byteLength).toBe(enc.body.length);
    expect(JSON.parse(enc.parts[0]!.toString()).inputs[0].parameters.binary_data_size).toBe(24);
  });

  it('parses aligned tensors as views of the body and misaligned ones as copies', () => {
    const enc = encodeInferRequest({ x, ids }, { binary: true });
    const aligned = new Uint8Array(new ArrayBuffer(enc.byteLength));
    aligned.set(enc.body);
    const r = parseInferRequest(aligned, enc.headerLength);
    expect(r.inputs.x!.data.buffer).toBe(aligned.buffer);
    expect(r.inputs.ids!.data.buffer).toBe(aligned.buffer);
    expect(Array.from(r.inputs.x!.data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(r.inputs.ids!.data as BigInt64Array)).toEqual([7n, -8n]);

    const shifted = new Uint8Array(new ArrayBuffer(enc.byteLength + 1), 1);
    shifted.set(enc.body);
    const c = parseInferRequest(shifted, enc.headerLength);
    expect(c.inputs.x!.data.buffer).not.toBe(shifted.buffer);
    expect(Array.from(c.inputs.x!.data as Float32Array)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(c.inputs.ids!.data as BigInt64Array)).toEqual([7n, -8n]);
  });

  it('reads shared-memory parameters of inputs and outputs', () => {
    const enc = encodeInferRequest(
      { x: { dtype: 'float32', shape: [2, 3], shm: { region: 'cam', offset: 8, byteSize: 24 } } },
      { outputs: [{ name: 'y', shm: { region: 'out', offset: 0, byteSize: 64 } }] },
    );
    const r = parseInferRequest(enc.body, enc.headerLength);
    expect(r.inputs).toEqual({});
    expect(r.shmInputs.x).toEqual({ dtype: 'float32', shape: [2, 3], shm: { region: 'cam', offset: 8, byteSize: 24 } });
    expect(r.outputs).toEqual([{ name: 'y', binary: false, shm: { region: 'out', offset: 0, byteSize: 64 } }]);
    const res = encodeInferResponse({ model_name: 'a/b' }, [
      { name: 'y', tensor: x, binary: false, shm: { region: 'out', offset: 0, byteSize: 64 } },
    ]);
    expect(parseInferResponse(res.body, res.headerLength).shmOutputs.y!.shm).toEqual({
      region: 'out',
      offset: 0,
      byteSize: 24,
    });
  });

  it('refuses incomplete or contradictory shared-memory parameters', () => {
    const body = (p: Record<string, unknown>, data?: unknown[]) =>
      Buffer.from(JSON.stringify({ inputs: [{ name: 'x', shape: [1], datatype: 'FP32', parameters: p, data }] }));
    const code = (b: Buffer) => {
      try {
        parseInferRequest(b);
      } catch (e) {
        return (e as { code: string }).code;
      }
      return 'none';
    };
    expect(code(body({ shared_memory_region: 'r' }))).toBe('API_BAD_INFER_REQUEST');
    expect(code(body({ shared_memory_byte_size: 4 }))).toBe('API_BAD_INFER_REQUEST');
    expect(code(body({ shared_memory_region: '../x', shared_memory_byte_size: 4 }))).toBe('API_BAD_INFER_REQUEST');
    expect(code(body({ shared_memory_region: 'r', shared_memory_byte_size: 4, shared_memory_offset: -1 }))).toBe(
      'API_BAD_INFER_REQUEST',
    );
    expect(code(body({ shared_memory_region: 'r', shared_memory_byte_size: 4 }, [1]))).toBe('API_BAD_INFER_REQUEST');
    expect(code(body({ shared_memory_region: 'r', shared_memory_byte_size: 8 }))).toBe('API_SHAPE_MISMATCH');
  });
});
