import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WireTensor } from '../../protocol/kserve.js';
import { writeModelFolder } from '../fixtures/model-folder.js';
import type { FixtureModel } from '../fixtures/onnx/models.js';
import { codeOfRejection } from '../helpers/error-code.js';
import { randomInput, startAgent, type Harness } from './api-harness.js';

/**
 * Caller-supplied output buffers (`infer(..., { outputs: [{ name, into }] })`) against the real
 * agent: the answer read straight into the app's arrays equals the default answer and the
 * in-process run byte for byte, for an answer small enough to be copied and one large enough
 * (768 KiB, many reads) to be read by the kernel into the
 * array itself; concurrent requests into their own
 * arrays never mix; misfits are refused with their code, write nothing, and the client goes on.
 */
let h: Harness;
let big: FixtureModel;
const BIG = 'acme/bigseg';
beforeAll(async () => {
  h = await startAgent({ kinds: ['classifier'], limits: { maxConcurrentPerModel: 32 } });
  const folder = join(h.dir, 'models', 'bigseg', '1');
  big = await writeModelFolder(folder, 'segmenter', { id: BIG, size: [256, 192] });
  await h.runtime.activate(BIG, 1, folder);
});
afterAll(async () => {
  await h?.close();
});

function input(fx: FixtureModel, seed: number): Record<string, WireTensor> {
  const [w, hgt] = fx.size;
  return { [fx.inputName]: { dtype: 'float32', shape: [1, 3, hgt, w], data: randomInput(3 * w * hgt, seed) } };
}

const models = () =>
  [
    ['acme/classifier', h.fixtures.classifier!],
    [BIG, big],
  ] as const;

function bytesOf(d: WireTensor['data']): Buffer {
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}

describe('infer into caller-supplied output buffers', () => {
  it('equals the default answer and the in-process run, in the caller array itself', async () => {
    for (const [id, fx] of models()) {
      const inputs = input(fx, 3);
      const local = (await h.runtime.infer(id, inputs)).outputs[fx.outputName]!;
      const plain = (await h.client.infer(id, inputs, { binary: true })).outputs[fx.outputName]!;
      const into = new Float32Array(local.data.length);
      for (const binary of [true, false]) {
        into.fill(Number.NaN);
        const r = await h.client.infer(id, inputs, { binary, outputs: [{ name: fx.outputName, into }] });
        expect(r.outputs[fx.outputName]!.data).toBe(into);
        expect(r.outputs[fx.outputName]!.shape).toEqual(local.shape);
        expect(bytesOf(into).equals(bytesOf(local.data))).toBe(true);
        expect(bytesOf(into).equals(bytesOf(plain.data))).toBe(true);
      }
    }
  });

  it('gives 16 concurrent requests into their own arrays each its own answer, three rounds', async () => {
    const seeds = Array.from({ length: 16 }, (_, i) => 40 + i);
    const want = await Promise.all(
      seeds.map(async (s) => bytesOf((await h.runtime.infer(BIG, input(big, s))).outputs[big.outputName]!.data)),
    );
    const arrays = seeds.map(() => new Float32Array(want[0]!.length / 4));
    for (let round = 0; round < 3; round++) {
      await Promise.all(
        seeds.map((s, i) =>
          h.client.infer(BIG, input(big, s), { binary: true, outputs: [{ name: big.outputName, into: arrays[i]! }] }),
        ),
      );
      arrays.forEach((a, i) => expect(bytesOf(a).equals(want[i]!)).toBe(true));
      for (const a of arrays) a.fill(0);
    }
  });

  it('refuses a misfit with API_OUTPUT_BUFFER_MISMATCH, writes nothing, and keeps serving', async () => {
    const inputs = input(big, 5);
    const n = (await h.runtime.infer(BIG, inputs)).outputs[big.outputName]!.data.length;
    for (const bad of [new Int32Array(n), new Float32Array(n - 1), new Uint8Array(n * 4)]) {
      bad.fill(7);
      const name = big.outputName;
      expect(await codeOfRejection(h.client.infer(BIG, inputs, { binary: true, outputs: [{ name, into: bad }] }))).toBe(
        'API_OUTPUT_BUFFER_MISMATCH',
      );
      expect(bad.every((v) => v === 7)).toBe(true);
    }
    // The refused answers were read to their end: the same client's next request is answered.
    const into = new Float32Array(n);
    await h.client.infer(BIG, inputs, { binary: true, outputs: [{ name: big.outputName, into }] });
    expect(into.some((v) => v !== 0)).toBe(true);
  });

  it("passes the agent's own error through, and refuses bad targets before sending", async () => {
    const into = new Float32Array(4).fill(7);
    expect(
      await codeOfRejection(
        h.client.infer('acme/absent', input(big, 1), { binary: true, outputs: [{ name: 'x', into }] }),
      ),
    ).toBe('API_MODEL_NOT_FOUND');
    expect(into.every((v) => v === 7)).toBe(true);
    const shm = { region: 'r', offset: 0, byteSize: 16 };
    for (const outputs of [
      [{ name: big.outputName, into, shm }],
      [
        { name: big.outputName, into },
        { name: big.outputName, into },
      ],
      [{ name: big.outputName, into: [1, 2] as unknown as Float32Array }],
    ])
      expect(await codeOfRejection(h.client.infer(BIG, input(big, 1), { binary: true, outputs }))).toBe('USAGE');
  });
});
