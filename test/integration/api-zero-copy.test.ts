import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeInferRequest, parseInferResponse, type WireTensor } from '../../protocol/kserve.js';
import { randomInput, startAgent, type Harness } from './api-harness.js';

/**
 * The zero-copy body path (agent/api/body.ts): request buffers are pooled and tensors are views
 * of them, so a buffer handed to the next request too early would mix answers. Many concurrent
 * clients with distinct inputs must each get their own in-process answer; bodies that cannot be
 * views (chunked, or a JSON header that is not padded to 8 bytes) must give the same answers.
 */
let h: Harness;
beforeAll(async () => {
  h = await startAgent({ kinds: ['classifier'], limits: { maxConcurrentPerModel: 32 } });
});
afterAll(async () => {
  await h?.close();
});

const ID = 'acme/classifier';
function tensor(seed: number): { name: string; t: WireTensor } {
  const fx = h.fixtures.classifier!;
  return {
    name: fx.inputName,
    t: {
      dtype: 'float32',
      shape: [1, 3, fx.size[1], fx.size[0]],
      data: randomInput(3 * fx.size[0] * fx.size[1], seed),
    },
  };
}
async function expected(seed: number): Promise<number[]> {
  const { name, t } = tensor(seed);
  const out = (await h.runtime.infer(ID, { [name]: t })).outputs[h.fixtures.classifier!.outputName]!;
  return Array.from(out.data as Float32Array);
}

/** POSTs an infer body as the given chunks (chunked encoding when `chunked`). */
function post(chunks: Buffer[], hl: number, chunked: boolean): Promise<{ status: number; body: Buffer; hl?: string }> {
  return new Promise((resolve, reject) => {
    const total = chunks.reduce((a, b) => a + b.length, 0);
    const req = request(
      {
        socketPath: h.socket,
        method: 'POST',
        path: `/v2/models/${encodeURIComponent(ID)}/infer`,
        headers: {
          'Content-Type': 'application/octet-stream',
          'Inference-Header-Content-Length': String(hl),
          ...(chunked ? { 'Transfer-Encoding': 'chunked' } : { 'Content-Length': String(total) }),
        },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(parts),
            hl: res.headers['inference-header-content-length'] as string | undefined,
          }),
        );
      },
    );
    req.on('error', reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
}

describe('pooled request buffers never mix requests', () => {
  it('24 concurrent clients with distinct inputs each get their own answer, three rounds', async () => {
    const seeds = Array.from({ length: 24 }, (_, i) => 100 + i);
    const want = await Promise.all(seeds.map(expected));
    for (let round = 0; round < 3; round++) {
      const got = await Promise.all(
        seeds.map(async (seed) => {
          const { name, t } = tensor(seed);
          const r = await h.client.infer(ID, { [name]: t }, { binary: true });
          return Array.from(r.outputs[h.fixtures.classifier!.outputName]!.data as Float32Array);
        }),
      );
      expect(got).toEqual(want);
    }
  });
});

describe('bodies that cannot be views give the same answers', () => {
  it('chunked transfer encoding, and a JSON header not padded to 8 bytes', async () => {
    const { name, t } = tensor(7);
    const want = await expected(7);
    const out = (a: { body: Buffer; hl?: string }) =>
      Array.from(
        parseInferResponse(a.body, a.hl === undefined ? undefined : Number(a.hl)).outputs[
          h.fixtures.classifier!.outputName
        ]!.data as Float32Array,
      );
    const enc = encodeInferRequest({ [name]: t }, { binary: true, binaryOutput: true });
    // Chunked, in uneven pieces: no Content-Length to size an aligned buffer from.
    const body = enc.body;
    const pieces = [body.subarray(0, 13), body.subarray(13, 5000), body.subarray(5000)];
    const chunked = await post(pieces, enc.headerLength!, true);
    expect(chunked.status).toBe(200);
    expect(out(chunked)).toEqual(want);
    // A foreign client's header without padding: the tensor starts at an odd offset.
    const header = Buffer.from(
      JSON.stringify({
        inputs: [{ name, shape: t.shape, datatype: 'FP32', parameters: { binary_data_size: t.data.byteLength } }],
        parameters: { binary_data_output: true },
        pad: 'x',
      }),
    );
    const misaligned = header.length % 4 === 0 ? Buffer.concat([header.subarray(0, -1), Buffer.from(' }')]) : header;
    expect(misaligned.length % 4).not.toBe(0);
    const bytes = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    const plain = await post([misaligned, bytes], misaligned.length, false);
    expect(plain.status).toBe(200);
    expect(out(plain)).toEqual(want);
  });
});
