import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SESSION_OPTIONS } from '../../agent/runtime/backends/onnx.js';
import { Runtime } from '../../agent/runtime/runtime.js';
import type {
  ClassificationResult,
  ObjectDetectionResult,
  PoseEstimationResult,
  SemanticSegmentationResult,
} from '../../agent/runtime/postprocess/index.js';
import { blobFromFrame } from '../../agent/runtime/preprocess.js';
import { encodePng, rectsImage, type Rgb } from '../fixtures/images.js';
import { writeModelFolder, type ModelFolderOptions } from '../fixtures/model-folder.js';
import type { FixtureKind, FixtureModel } from '../fixtures/onnx/models.js';

/**
 * Every purpose through the real runtime (onnxruntime-node, real files, PNG decode), with answers
 * that follow from the generated weights and the drawn images, and raw outputs compared with an
 * onnxruntime session created in-process with the same options.
 */
let root: string;
const rt = new Runtime();
const fixtures = new Map<string, FixtureModel>();

async function install(name: string, kind: FixtureKind, opts: ModelFolderOptions = {}): Promise<string> {
  const id = `test/${name}`;
  const dir = join(root, name, '1');
  fixtures.set(id, await writeModelFolder(dir, kind, { ...opts, id }));
  await rt.activate(id, 1, dir);
  return id;
}

const RED: Rgb = [250, 0, 0],
  GREEN: Rgb = [0, 240, 0],
  BLUE: Rgb = [0, 0, 255],
  BLACK: Rgb = [0, 0, 0];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'outpost-rt-'));
});
afterAll(async () => {
  await rt.close();
  await rm(root, { recursive: true, force: true });
});

describe('runtime: every purpose with generated models', () => {
  it('classifies colors (softmax, labels, best first)', async () => {
    const id = await install('classifier', 'classifier');
    const img = rectsImage(50, 40, [200, 30, 20], []);
    const r = (await rt.predict(id, await encodePng(img), { confidence: 0 })) as ClassificationResult;
    expect(r.purpose).toBe('Classification');
    expect(r.predictions.map((p) => p.label)).toEqual(['red', 'green', 'blue']);
    // Scores: W . means with means (200, 30, 20)/255 in RGB order (swaprb=true), then softmax.
    const m = [200 / 255, 30 / 255, 20 / 255];
    const logits = [2 * m[0]! - m[1]! - m[2]! + 0.1, -m[0]! + 2 * m[1]! - m[2]!, -m[0]! - m[1]! + 2 * m[2]! - 0.1];
    const z = logits.map(Math.exp),
      s = z.reduce((a, b) => a + b);
    expect(r.predictions[0]!.confidence).toBeCloseTo(z[0]! / s, 5);
    expect(r.predictions.reduce((a, p) => a + p.confidence, 0)).toBeCloseTo(1, 6);
    expect(r.duration).toBeGreaterThan(0);
  });

  const scene = rectsImage(80, 60, BLACK, [
    { box: [8, 10, 40, 30], color: RED },
    { box: [50, 5, 70, 25], color: GREEN },
  ]);
  const expectBoxes = (r: ObjectDetectionResult, slack: number) => {
    expect(r.predictions.map((p) => p.label).sort()).toEqual(['green', 'red']);
    const red = r.predictions.find((p) => p.label === 'red')!.box;
    const green = r.predictions.find((p) => p.label === 'green')!.box;
    for (const [got, want] of [
      [red, [8, 10, 40, 30]],
      [green, [50, 5, 70, 25]],
    ] as const) {
      expect(Math.abs(got.start_x - want[0])).toBeLessThanOrEqual(slack);
      expect(Math.abs(got.start_y - want[1])).toBeLessThanOrEqual(slack);
      expect(Math.abs(got.end_x - want[2])).toBeLessThanOrEqual(slack);
      expect(Math.abs(got.end_y - want[3])).toBeLessThanOrEqual(slack);
    }
  };

  it('detects with an SSD DetectionOutput layout, boxes in image pixels', async () => {
    const id = await install('ssd', 'ssd');
    const r = (await rt.predict(id, await encodePng(scene))) as ObjectDetectionResult;
    expect(r.image).toEqual({ width: 80, height: 60 });
    // One network pixel is 1.25 image pixels; bilinear edges move a box edge by at most one.
    expectBoxes(r, 1.25 * 2);
  });

  it('maps SSD boxes back through crop (wide image, centre window)', async () => {
    const id = await install('ssd-crop', 'ssd', { params: { crop: true } });
    // 128x48 into 64x48 with crop: scale 1, the centre 64 columns (32..96) are kept.
    const wide = rectsImage(128, 48, BLACK, [
      { box: [40, 8, 70, 30], color: RED },
      { box: [2, 2, 20, 20], color: GREEN },
    ]);
    const r = (await rt.predict(id, wide)) as ObjectDetectionResult;
    expect(r.predictions.map((p) => p.label)).toEqual(['red']);
    const b = r.predictions[0]!.box;
    // Scale 1, so the box is exact up to float32 rounding of the normalised corners.
    [b.start_x, b.start_y, b.end_x, b.end_y].forEach((v, i) => expect(v).toBeCloseTo([40, 8, 70, 30][i]!, 3));
  });

  it('detects with a YOLO layout and removes duplicates by NMS', async () => {
    const id = await install('yolo', 'yolo');
    const r = (await rt.predict(id, await encodePng(scene))) as ObjectDetectionResult;
    expect(r.predictions).toHaveLength(2);
    expectBoxes(r, 1.25 * 2);
    const all = (await rt.predict(id, scene, { overlap: 1 })) as ObjectDetectionResult;
    expect(all.predictions).toHaveLength(4); // with NMS off the shifted duplicates come back
  });

  it('finds keypoints at heatmap peaks', async () => {
    const id = await install('pose', 'pose');
    const img = rectsImage(64, 48, BLACK, [
      { box: [40, 20, 44, 24], color: RED },
      { box: [8, 36, 12, 40], color: BLUE },
    ]);
    const r = (await rt.predict(id, img)) as PoseEstimationResult;
    expect(r.poses).toHaveLength(1);
    const k = r.poses[0]!.key_points;
    // Image 64x48 -> net 32x24 -> heatmap 16x12: a cell is 4 image pixels; its centre is reported.
    expect(k.red_point).toMatchObject({ x: 42, y: 22 });
    expect(k.blue_point).toMatchObject({ x: 10, y: 38 });
    expect(k.green_point).toBeNull();
  });

  it('segments by argmax and samples the class map back to the image', async () => {
    const id = await install('segmenter', 'segmenter');
    const img = rectsImage(32, 24, BLACK, [
      { box: [0, 0, 16, 12], color: RED },
      { box: [16, 12, 32, 24], color: BLUE },
    ]);
    const r = (await rt.predict(id, await encodePng(img))) as SemanticSegmentationResult;
    expect(r.class_list).toEqual(['background', 'red', 'green', 'blue']);
    expect(r.colors[3]).toEqual([0, 0, 255]);
    expect(r.class_map).toHaveLength(24);
    for (let y = 0; y < 24; y++)
      for (let x = 0; x < 32; x++) {
        const want = x < 16 && y < 12 ? 1 : x >= 16 && y >= 12 ? 3 : 0;
        expect(r.class_map[y]![x]).toBe(want);
      }
  });

  it('infer() equals an in-process onnxruntime session with the same options, for every model', async () => {
    const img = rectsImage(70, 50, [30, 60, 90], [{ box: [5, 5, 30, 30], color: RED }]);
    for (const [id, fx] of fixtures) {
      const served = rt.get(id)!;
      const blob = blobFromFrame(img, {
        size: fx.size,
        mean: [0, 0, 0],
        scalefactor: 1 / 255,
        swaprb: true,
        crop: false,
      }).tensor;
      const got = await rt.infer(id, { [fx.inputName]: blob });
      const session = await ort.InferenceSession.create(join(served.dir, 'model.onnx'), DEFAULT_SESSION_OPTIONS);
      try {
        const want = await session.run({
          [fx.inputName]: new ort.Tensor('float32', blob.data as Float32Array, blob.shape),
        });
        expect(got.outputs[fx.outputName]!.shape).toEqual([...want[fx.outputName]!.dims]);
        expect(Array.from(got.outputs[fx.outputName]!.data as Float32Array)).toEqual(
          Array.from(want[fx.outputName]!.data as Float32Array),
        );
        // And both agree with the weights' arithmetic.
        const ref = fx.expected({ data: blob.data as Float32Array, shape: blob.shape });
        (got.outputs[fx.outputName]!.data as Float32Array).forEach((v, i) => expect(v).toBeCloseTo(ref[i]!, 5));
      } finally {
        await session.release();
      }
    }
  });
});
