import { describe, expect, it } from 'vitest';
import { encodeRepeatable, parseRepeatable } from '../../agent/api/repeat-request.js';
import { encodeRequest } from '../../agent/client/request-memo.js';
import { encodeInferRequest, encodeInferResponse, parseInferRequest } from '../../protocol/kserve.js';

/**
 * The agent's memo of repeated shared-memory requests (agent/api/repeat-request.ts): a hit is
 * exactly what parsing the same bytes gives, nothing a body carries is ever kept, and a reused
 * answer header is byte for byte the one encodeInferResponse writes. And the client's memo
 * (agent/client/request-memo.ts): a kept body is byte for byte what encodeInferRequest writes.
 */
const bytesOf = (e: { parts: Uint8Array[] }) => Buffer.concat(e.parts);
const shmRequest = (region: string) =>
  bytesOf(
    encodeInferRequest(
      { data: { dtype: 'float32', shape: [1, 3, 8, 8], shm: { region, offset: 0, byteSize: 768 } } },
      { binary: true, binaryOutput: true },
    ),
  );

describe('repeated shared-memory requests', () => {
  it('parses the same bytes once, equal to parseInferRequest, frozen', () => {
    const a = parseRepeatable(shmRequest('cam0'), undefined);
    const b = parseRepeatable(shmRequest('cam0'), undefined);
    expect(b).toBe(a);
    expect(a).toEqual(parseInferRequest(shmRequest('cam0')));
    expect(Object.isFrozen(a.shmInputs.data!.shape)).toBe(true);
    const other = parseRepeatable(shmRequest('cam1'), undefined);
    expect(other).not.toBe(a);
    expect(other.shmInputs.data!.shm.region).toBe('cam1');
  });

  it('never keeps a request with a tensor in its body, nor a refused one', () => {
    const enc = encodeInferRequest(
      { data: { dtype: 'float32', shape: [1, 2], data: Float32Array.of(1, 2) } },
      { binary: false },
    );
    const body = bytesOf(enc);
    const a = parseRepeatable(body, undefined);
    expect(parseRepeatable(body, undefined)).not.toBe(a);
    expect(Object.isFrozen(a)).toBe(false);
    const bad = Buffer.from('{"inputs": []}');
    for (let i = 0; i < 2; i++) expect(() => parseRepeatable(bad, undefined)).toThrow(/inputs/);
  });

  it('reuses the answer header only while model, version and output shapes stay the same', () => {
    const request = parseRepeatable(shmRequest('cam2'), undefined);
    const out = (n: number) => [
      {
        name: 'prob',
        tensor: { dtype: 'float32' as const, shape: [1, n], data: new Float32Array(n).fill(0.5) },
        binary: true,
      },
      {
        name: 'mask',
        tensor: { dtype: 'float32' as const, shape: [1, 4], data: new Float32Array(4) },
        binary: false,
        shm: { region: 'cam2', offset: 768, byteSize: 64 },
      },
    ];
    const meta = (v: string) => ({ model_name: 'acme/net', model_version: v });
    for (const [v, n] of [
      ['1', 10],
      ['1', 10],
      ['2', 10],
      ['2', 12],
      ['2', 12],
    ] as const) {
      const got = encodeRepeatable(request, meta(v), out(n));
      const want = encodeInferResponse(meta(v), out(n));
      expect(bytesOf(got)).toEqual(bytesOf(want));
      expect([got.contentType, got.headerLength, got.byteLength]).toEqual([
        want.contentType,
        want.headerLength,
        want.byteLength,
      ]);
    }
  });
});

describe("the client's repeated shared-memory requests", () => {
  const shm = (offset: number) => ({
    data: { dtype: 'float32' as const, shape: [1, 3, 8, 8], shm: { region: 'cam0', offset, byteSize: 768 } },
  });
  const opts = { binary: true, binaryOutput: true, outputs: [{ name: 'prob', binary: true }] };

  it('sends the body it encoded for the same request again, equal to a fresh encode', () => {
    const a = encodeRequest(shm(0), opts);
    expect(encodeRequest(shm(0), { ...opts })).toBe(a);
    expect(bytesOf(a)).toEqual(bytesOf(encodeInferRequest(shm(0), opts)));
    type Opts = Parameters<typeof encodeRequest>[1];
    const cases: [ReturnType<typeof shm>, Opts][] = [
      [shm(768), opts],
      [shm(0), { ...opts, id: 'frame-1' }],
      [shm(0), { ...opts, outputs: [{ name: 'prob', shm: { region: 'cam0', offset: 768, byteSize: 40 } }] }],
      [shm(0), { binary: true }],
    ];
    for (const [inputs, o] of cases) {
      const b = encodeRequest(inputs, o);
      expect(b).not.toBe(a);
      expect(bytesOf(b)).toEqual(bytesOf(encodeInferRequest(inputs, o)));
    }
  });

  it('encodes anew a request with a tensor in its body, or a field that is not a number', () => {
    const inBody = { data: { dtype: 'float32' as const, shape: [1, 2], data: Float32Array.of(1, 2) } };
    expect(encodeRequest(inBody, opts)).not.toBe(encodeRequest(inBody, opts));
    const odd = {
      data: {
        dtype: 'float32' as const,
        shape: [1, 3, 8, 8],
        shm: { region: 'cam0', offset: '0' as unknown as number, byteSize: 768 },
      },
    };
    expect(bytesOf(encodeRequest(odd, opts))).toEqual(bytesOf(encodeInferRequest(odd, opts)));
    expect(bytesOf(encodeRequest(odd, opts)).toString()).toContain('"shared_memory_offset":"0"');
  });
});
