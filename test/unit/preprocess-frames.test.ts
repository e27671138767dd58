import { describe, expect, it } from 'vitest';
import { blobFromFrame, parseFrame } from '../../agent/runtime/preprocess.js';

const frame = (w: number, h: number, px: (x: number, y: number) => number[], format: 'rgb' | 'bgr' = 'rgb') => {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) data.set(px(x, y), (y * w + x) * 3);
  return { width: w, height: h, channels: 3 as const, format, data };
};

describe('pre-processing without OpenCV', () => {
  it('same size: channel order, mean per blob channel, then scale', () => {
    const f = frame(2, 1, (x) => (x === 0 ? [10, 20, 30] : [40, 50, 60]));
    const p = {
      size: [2, 1] as [number, number],
      mean: [1, 2, 3] as [number, number, number],
      scalefactor: 0.5,
      crop: false,
    };
    // swaprb=false: BGR blob (the RGB decode read as the BGR image cv2.imread would give).
    expect(Array.from(blobFromFrame(f, { ...p, swaprb: false }).tensor.data as Float32Array)).toEqual([
      (30 - 1) / 2,
      (60 - 1) / 2,
      (20 - 2) / 2,
      (50 - 2) / 2,
      (10 - 3) / 2,
      (40 - 3) / 2,
    ]);
    expect(Array.from(blobFromFrame(f, { ...p, swaprb: true }).tensor.data as Float32Array)).toEqual([
      (10 - 1) / 2,
      (40 - 1) / 2,
      (20 - 2) / 2,
      (50 - 2) / 2,
      (30 - 3) / 2,
      (60 - 3) / 2,
    ]);
  });

  it('a BGR frame gives the same blob as the RGB frame of the same picture', () => {
    const rgb = frame(7, 5, (x, y) => [x * 30, y * 40, (x + y) * 10]);
    const bgr = frame(7, 5, (x, y) => [(x + y) * 10, y * 40, x * 30], 'bgr');
    const p = {
      size: [4, 3] as [number, number],
      mean: [0, 0, 0] as [number, number, number],
      scalefactor: 1,
      crop: true,
      swaprb: true,
    };
    expect(blobFromFrame(bgr, p).tensor.data).toEqual(blobFromFrame(rgb, p).tensor.data);
  });

  it('a 2x downscale of a constant image stays constant; geometry records crop and scale', () => {
    const r = blobFromFrame(
      frame(8, 4, () => [7, 7, 7]),
      { size: [2, 2], mean: [0, 0, 0], scalefactor: 1, swaprb: false, crop: true },
    );
    expect(new Set(r.tensor.data as Float32Array)).toEqual(new Set([7]));
    expect(r.geometry).toMatchObject({ scaleX: 0.5, scaleY: 0.5, offsetX: 1, offsetY: 0 });
  });

  it('parseFrame refuses inconsistent frames with RUNTIME_IMAGE_INVALID', () => {
    for (const bad of [
      undefined,
      {},
      { width: 1.5, height: 1, channels: 3, format: 'rgb', data: new Uint8Array(3) },
      { width: 1, height: 1, channels: 3, format: 'rgb', data: new Uint8Array(4) },
    ]) {
      expect(() => parseFrame(bad)).toThrow(expect.objectContaining({ code: 'RUNTIME_IMAGE_INVALID' }));
    }
    expect(parseFrame({ width: 1, height: 1, channels: 4, format: 'bgr', data: new Uint8Array(4) }).channels).toBe(4);
  });
});
