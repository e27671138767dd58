import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WireTensor } from '../../protocol/kserve.js';
import type {
  Box,
  ObjectDetectionResult,
  PoseEstimationResult,
  SemanticSegmentationResult,
} from '../../agent/runtime/postprocess/index.js';
import { blobFromFrame } from '../../agent/runtime/preprocess.js';
import { encodePng, rectsImage, type RawImage, type Rgb } from '../fixtures/images.js';
import { writeModelFolder } from '../fixtures/model-folder.js';
import type { LayoutKind } from '../fixtures/onnx/layouts.js';
import type { FixtureKind, FixtureModel, InputSpec } from '../fixtures/onnx/models.js';
import { type Harness, startAgent } from './api-harness.js';

/**
 * Every output layout, through the real agent API (socket, onnxruntime-node) with generated
 * models whose right answers follow from the drawn image: each detector finds the box of each
 * colour's lit pixels, so /predict must return the drawn rectangles in image pixels, whatever
 * the input layout (NCHW or NHWC, float32 or uint8) and the resize (stretch or letterbox). KServe
 * inference of the same model is compared with the fixture's own TypeScript reference.
 */
let h: Harness;
beforeAll(async () => {
  h = await startAgent({ kinds: [] });
});
afterAll(async () => {
  await h?.close();
});

const RED: Rgb = [250, 0, 0],
  GREEN: Rgb = [0, 240, 0],
  BLACK: Rgb = [0, 0, 0];
// 100x50 is wider than every net (4:3), so letterbox pads top and bottom and stretch distorts.
const RECTS: { box: [number, number, number, number]; color: Rgb; label: string }[] = [
  { box: [10, 10, 40, 30], color: RED, label: 'red' },
  { box: [60, 5, 90, 40], color: GREEN, label: 'green' },
];
const scene = rectsImage(100, 50, BLACK, RECTS);

interface Variant {
  input: InputSpec;
  letterbox: boolean;
}
const VARIANTS: Variant[] = [
  { input: { layout: 'NCHW' }, letterbox: false },
  { input: { layout: 'NHWC' }, letterbox: false },
  { input: { layout: 'NCHW' }, letterbox: true },
  { input: { layout: 'NHWC', dtype: 'uint8' }, letterbox: true },
  { input: { layout: 'NHWC', dtype: 'uint8' }, letterbox: false },
];
const tag = (v: Variant) =>
  `${v.input.layout}${v.input.dtype === 'uint8' ? ' uint8' : ''} ${v.letterbox ? 'letterbox' : 'stretch'}`;

let seq = 0;
async function install(
  kind: FixtureKind | LayoutKind,
  v: Variant,
  params: Record<string, unknown> = {},
): Promise<{ id: string; fx: FixtureModel }> {
  const id = `acme/${kind.replace('_', '-')}-${++seq}`;
  const dir = join(h.dir, 'models', id.replace('/', '_'), '1');
  const fx = await writeModelFolder(dir, kind, { id, input: v.input, params: { letterbox: v.letterbox, ...params } });
  await h.runtime.activate(id, 1, dir);
  return { id, fx };
}

/** One network pixel of rounding at the lit edges, in image pixels (scale 100/64 at most). */
const SLACK = 2;
function expectBox(got: Box, want: [number, number, number, number]): void {
  expect(Math.abs(got.start_x - want[0])).toBeLessThanOrEqual(SLACK);
  expect(Math.abs(got.start_y - want[1])).toBeLessThanOrEqual(SLACK);
  expect(Math.abs(got.end_x - want[2])).toBeLessThanOrEqual(SLACK);
  expect(Math.abs(got.end_y - want[3])).toBeLessThanOrEqual(SLACK);
}

/** The KServe input the model declares, built in the test from an NCHW blob (its own transpose). */
function wire(fx: FixtureModel, blob: Float32Array, v: Variant): WireTensor {
  const [w, hh] = fx.size;
  const uint8 = v.input.dtype === 'uint8';
  // A uint8 model takes pixel values; the blob is 0..1, so scale back up.
  const val = (x: number) => (uint8 ? Math.round(x * 255) : x);
  if (v.input.layout !== 'NHWC') {
    return uint8
      ? { dtype: 'uint8', shape: [1, 3, hh, w], data: Uint8Array.from(blob, val) }
      : { dtype: 'float32', shape: [1, 3, hh, w], data: blob };
  }
  const n = w * hh;
  const out = uint8 ? new Uint8Array(3 * n) : new Float32Array(3 * n);
  for (let p = 0; p < n; p++) for (let c = 0; c < 3; c++) out[p * 3 + c] = val(blob[c * n + p]!);
  return { dtype: uint8 ? 'uint8' : 'float32', shape: [1, hh, w, 3], data: out };
}

/** KServe: the model's first output equals the fixture's reference for a stretched blob of `img`. */
async function expectKServe(id: string, fx: FixtureModel, v: Variant, img: RawImage): Promise<void> {
  const { tensor } = blobFromFrame(img, {
    size: fx.size,
    mean: [0, 0, 0],
    scalefactor: 1 / 255,
    swaprb: true,
    crop: false,
  });
  const blob = tensor.data as Float32Array;
  // uint8 models see the blob rounded to whole pixel values, as the test sends them.
  const seen = v.input.dtype === 'uint8' ? Float32Array.from(blob, (x) => Math.round(x * 255) / 255) : blob;
  const { outputs, meta } = await h.client.infer(id, { data: wire(fx, blob, v) }, { binary: true });
  expect(meta.model_name).toBe(id);
  const out = outputs[fx.outputName]!;
  expect(out.shape).toEqual(fx.outputShape);
  const want = fx.expected({ data: seen, shape: tensor.shape });
  const got = Array.from(out.data as ArrayLike<number | bigint>, Number);
  expect(got.length).toBe(want.length);
  got.forEach((g, i) => expect(g).toBeCloseTo(want[i]!, 4));
}

async function metadata(id: string): Promise<Record<string, unknown>> {
  return (await h.client.model(id)).outpost.serving as Record<string, unknown>;
}

describe('detection layouts through /predict and KServe', () => {
  const families: { kind: FixtureKind | LayoutKind; layout: string; params?: Record<string, unknown> }[] = [
    { kind: 'ssd', layout: 'ssd' },
    { kind: 'tfod', layout: 'tf_detection' },
    { kind: 'regions', layout: 'yolo_regions' },
    { kind: 'yolo', layout: 'yolov5' },
    { kind: 'yolov8', layout: 'yolov8' },
  ];
  for (const f of families) {
    for (const v of VARIANTS) {
      it(`${f.layout}, ${tag(v)}`, async () => {
        const { id, fx } = await install(f.kind, v, f.params);
        const serving = await metadata(id);
        expect(serving).toMatchObject({
          mode: 'results',
          input: { layout: v.input.layout, dtype: v.input.dtype ?? 'float32', source: 'shape' },
          output: { layout: f.layout, letterbox: v.letterbox },
        });
        const r = (await h.client.predict(id, await encodePng(scene))) as unknown as ObjectDetectionResult;
        expect(r.predictions.map((p) => p.label).sort()).toEqual(['green', 'red']);
        for (const rect of RECTS) expectBox(r.predictions.find((p) => p.label === rect.label)!.box, rect.box);
        await expectKServe(id, fx, v, rectsImage(fx.size[0], fx.size[1], BLACK, [{ box: [5, 6, 30, 20], color: RED }]));
      });
    }
  }
});

describe('pose layouts', () => {
  for (const v of VARIANTS) {
    it(`YOLOv8-pose (multi-person), ${tag(v)}`, async () => {
      const { id, fx } = await install('yolov8pose', v);
      expect(await metadata(id)).toMatchObject({ mode: 'results', output: { layout: 'yolov8_pose', source: 'shape' } });
      const r = (await h.client.predict(id, await encodePng(scene))) as unknown as PoseEstimationResult;
      // Two people (red and green); the shifted duplicates are suppressed.
      expect(r.poses).toHaveLength(2);
      for (const rect of RECTS) {
        const pose = r.poses.find((p) => Math.abs(p.box!.start_x - rect.box[0]) <= SLACK)!;
        expectBox(pose.box!, rect.box);
        const tl = pose.key_points.top_left!,
          br = pose.key_points.bottom_right!;
        expectBox({ start_x: tl.x, start_y: tl.y, end_x: br.x, end_y: br.y }, rect.box);
      }
      await expectKServe(id, fx, v, rectsImage(fx.size[0], fx.size[1], BLACK, [{ box: [5, 6, 30, 20], color: RED }]));
    });
  }

  for (const v of VARIANTS.slice(0, 3)) {
    it(`single-person heatmaps, ${tag(v)}`, async () => {
      const { id, fx } = await install('pose', v);
      expect(await metadata(id)).toMatchObject({ output: { layout: 'heatmaps' } });
      // A 4x4 red square at (20..24, 8..12) of a 64x48 image: the heatmap peak is the cell over it.
      const img = rectsImage(64, 48, BLACK, [{ box: [20, 8, 24, 12], color: RED }]);
      const r = (await h.client.predict(id, await encodePng(img))) as unknown as PoseEstimationResult;
      const kp = r.poses[0]!.key_points.red_point!;
      expect(Math.abs(kp.x - 22)).toBeLessThanOrEqual(2);
      expect(Math.abs(kp.y - 10)).toBeLessThanOrEqual(2);
      await expectKServe(id, fx, v, img);
    });
  }
});

describe('segmentation layouts', () => {
  const kinds: { kind: FixtureKind | LayoutKind; layout: string }[] = [
    { kind: 'segmenter', layout: 'segmentation_nchw' },
    { kind: 'seg_nhwc', layout: 'segmentation_nhwc' },
    { kind: 'seg_argmax', layout: 'segmentation_argmax' },
  ];
  for (const k of kinds) {
    for (const v of VARIANTS.slice(0, 4)) {
      it(`${k.layout}, ${tag(v)}`, async () => {
        const { id, fx } = await install(k.kind, v);
        expect(await metadata(id)).toMatchObject({ output: { layout: k.layout, letterbox: v.letterbox } });
        const r = (await h.client.predict(id, await encodePng(scene))) as unknown as SemanticSegmentationResult;
        expect(r.class_map).toHaveLength(50);
        expect(r.class_map[0]).toHaveLength(100);
        // Away from the rectangles' edges (one net cell is up to 7 image pixels) the class is exact.
        const margin = 7;
        let checked = 0;
        for (let y = 0; y < 50; y++)
          for (let x = 0; x < 100; x++) {
            const near = RECTS.some(
              (rc) =>
                x > rc.box[0] - margin && x < rc.box[2] + margin && y > rc.box[1] - margin && y < rc.box[3] + margin,
            );
            const inside = RECTS.findIndex((rc) => x >= rc.box[0] && x < rc.box[2] && y >= rc.box[1] && y < rc.box[3]);
            const deep = RECTS.some(
              (rc) =>
                x >= rc.box[0] + margin && x < rc.box[2] - margin && y >= rc.box[1] + margin && y < rc.box[3] - margin,
            );
            if (deep || !near) {
              expect(r.class_map[y]![x]).toBe(deep ? inside + 1 : 0);
              checked++;
            }
          }
        expect(checked).toBeGreaterThan(1000);
        await expectKServe(id, fx, v, rectsImage(fx.size[0], fx.size[1], BLACK, [{ box: [2, 3, 9, 8], color: GREEN }]));
      });
    }
  }
});
