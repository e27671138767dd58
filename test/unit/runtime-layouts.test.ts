import { describe, expect, it } from 'vitest';
import { resolveImageInput, toModelInput } from '../../agent/runtime/input-layout.js';
import { LETTERBOX_GRAY, letterboxFromFrame } from '../../agent/runtime/letterbox.js';
import { resolveOutputLayout } from '../../agent/runtime/postprocess/layouts.js';
import { blobFromFrame } from '../../agent/runtime/preprocess.js';
import type { TensorInfo } from '../../agent/runtime/backend.js';
import type { ModelParameters } from '../../protocol/manifest-types.js';
import { noiseImage } from '../fixtures/images.js';

const params = (over: Partial<ModelParameters> = {}): ModelParameters =>
  ({
    framework_type: 'onnx',
    model_file: 'm.onnx',
    mean: [0, 0, 0],
    scalefactor: 1,
    size: [128, 96],
    purpose: 'ObjectDetection',
    crop: false,
    swaprb: false,
    softmax: false,
    ...over,
  }) as ModelParameters;
const input = (shape: (number | null)[], dtype: TensorInfo['dtype'] = 'float32'): TensorInfo[] => [
  { name: 'x', dtype, shape },
];

describe('input layout from the model', () => {
  it('NCHW and NHWC from the channel axis; dynamic dims filled from size', () => {
    expect(resolveImageInput(input([1, 3, 96, 128]), params())).toMatchObject({ layout: 'NCHW', source: 'shape' });
    expect(resolveImageInput(input([1, 128, 128, 3], 'uint8'), params({ size: [128, 128] }))).toMatchObject({
      layout: 'NHWC',
      dtype: 'uint8',
      shape: [1, 128, 128, 3],
    });
    expect(resolveImageInput(input([null, 3, null, null]), params())).toMatchObject({ shape: [1, 3, 96, 128] });
    expect(resolveImageInput(input([null, null, null, 3]), params())).toMatchObject({ shape: [1, 96, 128, 3] });
  });

  it('input_format decides where the shape cannot; otherwise NCHW is reported as a default', () => {
    expect(resolveImageInput(input([1, null, null, null]), params())).toMatchObject({
      layout: 'NCHW',
      source: 'default',
    });
    expect(resolveImageInput(input([1, null, null, null]), params({ input_format: 'NHWC' }))).toMatchObject({
      layout: 'NHWC',
      source: 'input_format',
    });
    expect(resolveImageInput(input([1, 3, 3, 3]), params({ size: [3, 3], input_format: 'nhwc' }))).toMatchObject({
      layout: 'NHWC',
    });
  });

  it('a static size that contradicts "size" names the fix; non-image inputs give a reason', () => {
    expect(() => resolveImageInput(input([1, 128, 128, 3]), params({ size: [300, 300] }))).toThrow(
      /does not fit the NHWC network input \[1,128,128,3\]; set "size" to \[128,128\]/,
    );
    expect(resolveImageInput(input([1, 10]), params())).toHaveProperty('reason');
    expect(resolveImageInput(input([1, 3, 96, 128], 'int64'), params())).toHaveProperty('reason');
    expect(resolveImageInput([...input([1, 3, 96, 128]), ...input([1])], params())).toHaveProperty('reason');
  });

  it('toModelInput transposes to NHWC and rounds to uint8', () => {
    const blob = { dtype: 'float32' as const, shape: [1, 3, 1, 2], data: Float32Array.from([1, 2, 3.4, 4.6, -5, 300]) };
    const nhwc = toModelInput(blob, {
      name: 'x',
      layout: 'NHWC',
      dtype: 'uint8',
      shape: [1, 1, 2, 3],
      source: 'shape',
    });
    expect(Array.from(nhwc.data as Uint8Array)).toEqual([1, 3, 0, 2, 5, 255]);
    expect(nhwc.shape).toEqual([1, 1, 2, 3]);
  });
});

describe('letterbox', () => {
  it("matches ultralytics' LetterBox: resized by min ratio, centred, gray 114 border", () => {
    const img = noiseImage(100, 50, 3);
    const p = {
      size: [64, 48] as [number, number],
      mean: [0, 0, 0] as [number, number, number],
      scalefactor: 1,
      swaprb: false,
      crop: false,
    };
    const { tensor, geometry } = letterboxFromFrame(img, p);
    // ultralytics: r = min(48/50, 64/100) = 0.64; new_unpad = (64, 32); dh = 8 -> top = round(8 - 0.1) = 8.
    expect(geometry).toMatchObject({ scaleX: 0.64, scaleY: 0.64, offsetX: 0, offsetY: -8 });
    const inner = blobFromFrame(img, { ...p, size: [64, 32] }).tensor.data as Float32Array;
    const d = tensor.data as Float32Array;
    for (let k = 0; k < 3; k++)
      for (let y = 0; y < 48; y++)
        for (let x = 0; x < 64; x++) {
          const v = d[k * 48 * 64 + y * 64 + x]!;
          if (y < 8 || y >= 40) expect(v).toBe(LETTERBOX_GRAY);
          else expect(v).toBe(inner[k * 32 * 64 + (y - 8) * 64 + x]!);
        }
    // scale_boxes: image x = (net x - pad) / gain.
    expect((20 + geometry.offsetX) / geometry.scaleX).toBeCloseTo(20 / 0.64, 9);
    expect((30 + geometry.offsetY) / geometry.scaleY).toBeCloseTo((30 - 8) / 0.64, 9);
  });

  it('odd padding puts the extra pixel at the bottom/right, as round(d -/+ 0.1) does', () => {
    const { geometry } = letterboxFromFrame(noiseImage(10, 7, 1), {
      size: [10, 10],
      mean: [0, 0, 0],
      scalefactor: 1,
      swaprb: false,
      crop: false,
    });
    // new_unpad (10, 7), dh = 1.5: top = round(1.4) = 1, bottom = round(1.6) = 2.
    expect(geometry.offsetY).toBe(-1);
  });
});

describe('output layout resolution', () => {
  const q = (shapes: Record<string, number[]>, labels: string[], over: Partial<ModelParameters> = {}) => ({
    purpose: (over.purpose ?? 'ObjectDetection') as ModelParameters['purpose'],
    framework: 'onnx' as const,
    params: params(over),
    outputs: Object.fromEntries(
      Object.entries(shapes).map(([n, s]) => [
        n,
        { dtype: 'float32' as const, shape: s, data: new Float32Array(s.reduce((a, b) => a * b, 1)) },
      ]),
    ),
    outputOrder: Object.keys(shapes),
    labels,
    inputLayout: 'NCHW' as const,
  });
  const coco = Array.from({ length: 80 }, (_, i) => `c${i}`);

  it('YOLOv8 [1,84,8400] and YOLOv5 [1,25200,85] from the label count, letterboxed', () => {
    expect(resolveOutputLayout(q({ out: [1, 84, 8400] }, coco))).toEqual({
      layout: 'yolov8',
      source: 'shape',
      letterbox: true,
    });
    expect(resolveOutputLayout(q({ out: [1, 25200, 85] }, coco))).toEqual({
      layout: 'yolov5',
      source: 'shape',
      letterbox: true,
    });
    expect(resolveOutputLayout(q({ out: [1, 1, 100, 7] }, coco))).toEqual({
      layout: 'ssd',
      source: 'shape',
      letterbox: false,
    });
  });

  it('architecture overrides the shapes and letterbox overrides the family default', () => {
    expect(
      resolveOutputLayout(q({ out: [1, 84, 8400] }, coco, { architecture: 'yolov5' as never, letterbox: false })),
    ).toEqual({
      layout: 'yolov5',
      source: 'architecture',
      letterbox: false,
    });
  });

  it('a label count that fits no family is refused with what to set, not guessed', () => {
    expect(() => resolveOutputLayout(q({ out: [1, 84, 8400] }, ['a', 'b']))).toThrow(/Set "architecture"/);
  });

  it('pose and segmentation families', () => {
    expect(resolveOutputLayout(q({ out: [1, 56, 8400] }, [], { purpose: 'PoseEstimation' })).layout).toBe(
      'yolov8_pose',
    );
    expect(resolveOutputLayout(q({ out: [1, 17, 64, 48] }, [], { purpose: 'PoseEstimation' })).layout).toBe('heatmaps');
    const seg = { purpose: 'SemanticSegmentation' as const };
    expect(resolveOutputLayout(q({ out: [1, 21, 64, 64] }, new Array(21).fill('x'), seg)).layout).toBe(
      'segmentation_nchw',
    );
    expect(resolveOutputLayout(q({ out: [1, 64, 64, 21] }, new Array(21).fill('x'), seg)).layout).toBe(
      'segmentation_nhwc',
    );
    expect(resolveOutputLayout(q({ out: [1, 64, 64] }, [], seg)).layout).toBe('segmentation_argmax');
  });
});
