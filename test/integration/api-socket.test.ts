import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SESSION_OPTIONS } from '../../agent/runtime/backends/onnx.js';
import type { WireTensor } from '../../protocol/kserve.js';
import { encodePng, encodeJpeg, rectsImage, twoBlocksImage } from '../fixtures/images.js';
import { FIXTURE_KINDS } from '../fixtures/onnx/models.js';
import { randomInput, startAgent, type Harness } from './api-harness.js';

/**
 * Every purpose through the socket: KServe metadata, infer over JSON and binary tensors (outputs
 * compared with onnxruntime-node run in-process on the same file with the runtime's session
 * options), predict with typed results and annotation, status and metrics.
 */
let h: Harness;
const sessions: Record<string, ort.InferenceSession> = {};

beforeAll(async () => {
  h = await startAgent();
  for (const kind of FIXTURE_KINDS) {
    sessions[kind] = await ort.InferenceSession.create(
      join(h.fixtures[kind]!.dir, 'model.onnx'),
      DEFAULT_SESSION_OPTIONS,
    );
  }
});
afterAll(async () => {
  for (const s of Object.values(sessions)) await s.release();
  await h?.close();
});

describe('KServe health and metadata over the socket', () => {
  it('answers live, ready and server metadata', async () => {
    expect(await h.client.health()).toEqual({ live: true, ready: true });
    const meta = await h.client.server();
    expect(meta.name).toBe('outpost-agent');
    expect(meta.extensions).toContain('binary_tensor_data');
  });

  it('lists models and gives inputs/outputs with KServe datatype names', async () => {
    const models = await h.client.models();
    expect(models.map((m) => m.id)).toEqual(FIXTURE_KINDS.map((k) => `acme/${k}`).sort());
    const fx = h.fixtures.classifier!;
    const meta = await h.client.model('acme/classifier');
    expect(meta.name).toBe('acme/classifier');
    expect(meta.versions).toEqual(['1']);
    expect(meta.platform).toBe('onnxruntime_onnx');
    expect(meta.inputs).toEqual([{ name: fx.inputName, datatype: 'FP32', shape: [1, 3, fx.size[1], fx.size[0]] }]);
    expect(meta.outputs).toEqual([{ name: fx.outputName, datatype: 'FP32', shape: fx.outputShape }]);
    // The alias (name part) and an explicit version reach the same model.
    expect((await h.client.model('classifier', 1)).name).toBe('acme/classifier');
    expect(await h.client.ready('acme/classifier', 1)).toBe(true);
  });
});

describe('infer equals onnxruntime-node in-process', () => {
  for (const kind of FIXTURE_KINDS) {
    for (const binary of [false, true]) {
      it(`${kind} (${binary ? 'binary tensors' : 'JSON tensors'})`, async () => {
        const fx = h.fixtures[kind]!;
        const shape = [1, 3, fx.size[1], fx.size[0]];
        const data = randomInput(
          shape.reduce((a, b) => a * b, 1),
          kind.length + (binary ? 100 : 0),
        );
        const input: WireTensor = { dtype: 'float32', shape, data };
        const { meta, outputs } = await h.client.infer(`acme/${kind}`, { [fx.inputName]: input }, { binary });
        expect(meta.model_version).toBe('1');
        const ref = await sessions[kind]!.run({ [fx.inputName]: new ort.Tensor('float32', data, shape) });
        const want = ref[fx.outputName]!;
        const got = outputs[fx.outputName]!;
        expect(got.shape).toEqual([...want.dims]);
        // Exact equality: float32 -> JSON number -> float32 round-trips bit for bit, and the
        // binary path copies bytes. Same file, same session options, same CPU provider.
        expect(Array.from(got.data as Float32Array)).toEqual(Array.from(want.data as Float32Array));
      });
    }
  }

  it('returns only the requested outputs, mixing JSON and binary framing', async () => {
    const fx = h.fixtures.yolo!;
    const shape = [1, 3, fx.size[1], fx.size[0]];
    const res = await h.client.infer(
      'yolo',
      { [fx.inputName]: { dtype: 'float32', shape, data: randomInput(3 * fx.size[0] * fx.size[1]) } },
      { outputs: [fx.outputName], binary: true },
    );
    expect(Object.keys(res.outputs)).toEqual([fx.outputName]);
    expect(res.meta.outputs[0]!.parameters?.binary_data_size).toBe(fx.outputShape.reduce((a, b) => a * b, 1) * 4);
  });
});

describe('predict: typed results for every purpose', () => {
  // Blocks of pure color on gray: the fixtures' answers follow from where the colors are.
  const img = twoBlocksImage();

  for (const kind of FIXTURE_KINDS) {
    it(`${kind}: the socket answer equals the runtime's in-process answer`, async () => {
      const png = await encodePng(img);
      const got = await h.client.predict(`acme/${kind}`, png);
      const local = await h.runtime.predict(`acme/${kind}`, png);
      const strip = (r: Record<string, unknown>) => ({ ...r, duration: undefined });
      expect(strip(got)).toEqual(strip(JSON.parse(JSON.stringify(local))));
      expect(got.version).toBe(1);
      expect(typeof got.duration).toBe('number');
    });
  }

  it('classifies a red image as red and a blue one as blue (JPEG and PNG)', async () => {
    const red = await encodeJpeg(rectsImage(40, 40, [250, 10, 10], []));
    const blue = await encodePng(rectsImage(40, 40, [10, 10, 250], []));
    const r = await h.client.predict('acme/classifier', red, { topK: 1 });
    const b = await h.client.predict('acme/classifier', blue, { topK: 1 });
    expect((r.predictions![0] as { label: string }).label).toBe('red');
    expect((b.predictions![0] as { label: string }).label).toBe('blue');
  });

  it('detects the colored blocks with boxes in image pixels', async () => {
    const got = await h.client.predict('acme/ssd', await encodePng(img), { confidence: 0.3 });
    const labels = (got.predictions as { label: string }[]).map((p) => p.label).sort();
    expect(labels).toEqual(['blue', 'red']);
  });

  for (const kind of FIXTURE_KINDS) {
    it(`${kind}: annotate=1 returns a PNG of the input's size that differs from the input`, async () => {
      const png = await encodePng(img);
      const out = await h.client.predict(`acme/${kind}`, png, { annotate: true });
      const meta = await sharp(out).metadata();
      expect(meta.format).toBe('png');
      expect([meta.width, meta.height]).toEqual([img.width, img.height]);
      const a = await sharp(out).removeAlpha().raw().toBuffer();
      expect(Buffer.compare(a, Buffer.from(img.data))).not.toBe(0);
    });
  }
});

describe('status and metrics', () => {
  it('status lists models with state and backend', async () => {
    const s = (await h.client.status()) as {
      models: { id: string; state: string; backend: string; activeVersion: number }[];
    };
    const c = s.models.find((m) => m.id === 'acme/classifier')!;
    expect(c).toMatchObject({ state: 'ready', backend: 'onnx', activeVersion: 1 });
  });

  it('metrics count requests, latency and inference per model', async () => {
    const text = await h.client.metrics();
    expect(text).toMatch(/outpost_api_requests_total\{route="infer",status="200"\} \d+/);
    expect(text).toMatch(/outpost_inference_duration_seconds_count\{model="acme\/classifier"\} [1-9]/);
    expect(text).toMatch(/outpost_model_requests_total\{model="acme\/ssd",route="predict"\} [1-9]/);
    expect(text).toContain('# TYPE outpost_api_request_duration_seconds histogram');
  });
});
