import type { Tensor } from './backend.js';
import { type BlobParams, blobFromFrame, type Geometry, level, type RawFrame } from './preprocess.js';

/**
 * The ultralytics letterbox (YOLOv5/v7/v8/v11 and their pose models): the image is scaled by
 * r = min(w/cols, h/rows) to round(cols*r) x round(rows*r) with INTER_LINEAR, keeping its aspect
 * ratio, and centred on a w x h canvas of gray 114, the left/top border being round(d - 0.1) of
 * half the padding d, as ultralytics' LetterBox(auto=False, scaleup=True) does. mean,
 * scalefactor and swaprb then apply to every pixel, border included, exactly as blobFromImage
 * applies them to the padded image (the border is the same value on all three channels, so its
 * place in the channel order does not matter).
 *
 * The geometry maps network pixels back through the border (negative offsets) and the scale of
 * the resized region, so post-processing undoes it with the same formula as a crop.
 */
export const LETTERBOX_GRAY = 114;

/** Where the resized image sits on the canvas: its size and its left/top border. */
export function letterboxShape(cols: number, rows: number, p: BlobParams) {
  const [w, h] = p.size;
  const r = Math.min(w / cols, h / rows);
  const nw = Math.max(1, Math.min(w, roundHalfEven(cols * r)));
  const nh = Math.max(1, Math.min(h, roundHalfEven(rows * r)));
  return { nw, nh, left: Math.round((w - nw) / 2 - 0.1), top: Math.round((h - nh) / 2 - 0.1) };
}

/** The geometry letterboxFromFrame reports for a cols x rows frame (the native path computes the same). */
export function letterboxGeometry(cols: number, rows: number, p: BlobParams): Geometry {
  const { nw, nh, left, top } = letterboxShape(cols, rows, p);
  return {
    imageWidth: cols,
    imageHeight: rows,
    netWidth: p.size[0],
    netHeight: p.size[1],
    scaleX: nw / cols,
    scaleY: nh / rows,
    offsetX: 0 - left,
    offsetY: 0 - top,
  };
}

export function letterboxFromFrame(frame: RawFrame, p: BlobParams): { tensor: Tensor; geometry: Geometry } {
  const [w, h] = p.size;
  const { nw, nh, left, top } = letterboxShape(frame.width, frame.height, p);
  const inner = blobFromFrame(frame, { ...p, size: [nw, nh], crop: false });
  const src = inner.tensor.data as Float32Array;
  const out = new Float32Array(3 * w * h);
  for (let k = 0; k < 3; k++) {
    const plane = out.subarray(k * w * h, (k + 1) * w * h);
    plane.fill(level(LETTERBOX_GRAY, p.mean[k]!, p.scalefactor));
    for (let y = 0; y < nh; y++) {
      const from = k * nw * nh + y * nw;
      plane.set(src.subarray(from, from + nw), (y + top) * w + left);
    }
  }
  return {
    tensor: { dtype: 'float32', shape: [1, 3, h, w], data: out },
    geometry: letterboxGeometry(frame.width, frame.height, p),
  };
}

/** Python's round(): half to even (ultralytics computes the resized size with it). */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}
