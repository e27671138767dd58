import { OutpostError } from '../../protocol/errors/index.js';
import type { Tensor } from './backend.js';
import { loadSharp } from './load-sharp.js';

/**
 * Pre-processing with the semantics of OpenCV 4.6's
 * `cv2.dnn.blobFromImage(image, scalefactor, size, mean, swapRB, crop)`.
 *
 * How Outpost maps its images onto that call: blobFromImage is defined on a BGR image (what
 * cv2.imread returns and what edgeIQ apps pass). Outpost decodes JPEG/PNG to RGB with sharp and
 * then reads it as the BGR image cv2.imread would have produced from the same file; a raw frame
 * says whether it is 'rgb' or 'bgr'. So, exactly as in OpenCV:
 *   - swaprb=false: blob channels are B, G, R;   swaprb=true: blob channels are R, G, B;
 *   - mean[k] is subtracted from blob channel k (OpenCV swaps the mean together with the channels);
 *   - blob = (pixel - mean) * scalefactor, NCHW float32, N = 1.
 * Resizing follows cv::resize(INTER_LINEAR) on the 8-bit image (half-pixel centres, no
 * antialiasing, edge clamping, the result rounded to 8 bits before the float conversion, as
 * blobFromImage resizes before it converts). With crop, the image is scaled by
 * f = max(w/cols, h/rows) (float32, like OpenCV), to round(cols*f) x round(rows*f), and the
 * centre w x h window is kept (offset floor((cols' - w)/2)).
 * The arithmetic is cv::resize's own for 8-bit images: OpenCV's 11-bit fixed-point weights,
 * exact integer horizontal sums, and the vertical blend as its SIMD pass computes it (two
 * truncating multiply-highs, then a rounding shift). So the blob is bit-identical to
 * cv2.dnn.blobFromImage on this build (Debian's OpenCV 4.6, x86-64): 0 differing elements in
 * test/integration/runtime-preprocess-cv2.test.ts (36 million elements, every geometry) and
 * runtime-decode-reduced-cv2.test.ts (JPEG files); the stated tolerance stays one level.
 */
export interface RawFrame {
  width: number;
  height: number;
  /** 3 (colour) or 4 (alpha ignored, as cv2.imread's IMREAD_COLOR does). */
  channels: 3 | 4;
  format: 'rgb' | 'bgr';
  data: Uint8Array;
}

export interface BlobParams {
  /** [width, height] of the network input. */
  size: [number, number];
  mean: [number, number, number];
  scalefactor: number;
  swaprb: boolean;
  crop: boolean;
}

/** Where the blob's pixels came from, so post-processing can map network coordinates back. */
export interface Geometry {
  imageWidth: number;
  imageHeight: number;
  netWidth: number;
  netHeight: number;
  /** Resize factors from image to resized image (x, y); equal when cropping. */
  scaleX: number;
  scaleY: number;
  /** Crop offset in the resized image (0 without crop). */
  offsetX: number;
  offsetY: number;
}

export interface Preprocessed {
  tensor: Tensor;
  geometry: Geometry;
  frame: RawFrame;
}

/** Default bound on decoded image size: 8K x 8K is far above any camera frame we serve. */
export const MAX_IMAGE_PIXELS = 64 * 1024 * 1024;

/**
 * Decodes JPEG or PNG bytes to an RGB frame, applying EXIF orientation as cv2.imread does.
 * `source`: a file holding the same bytes, with libvips load options (agent/runtime/decode.ts).
 */
export async function decodeImage(
  bytes: Uint8Array,
  opts: { maxPixels?: number; source?: string } = {},
): Promise<RawFrame> {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) {
    throw new OutpostError('RUNTIME_IMAGE_INVALID', 'the image is empty; send JPEG or PNG bytes');
  }
  const kind = sniff(bytes);
  if (!kind)
    throw new OutpostError(
      'RUNTIME_IMAGE_INVALID',
      'the bytes are not a JPEG or PNG image (unknown signature); send JPEG or PNG bytes',
      { length: bytes.length },
    );
  const sharp = await loadSharp();
  try {
    const { data, info } = await sharp(opts.source ?? bytes, {
      limitInputPixels: opts.maxPixels ?? MAX_IMAGE_PIXELS,
      failOn: 'error',
    })
      .rotate()
      .toColourspace('srgb')
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded to ${info.channels} channels`);
    return {
      width: info.width,
      height: info.height,
      channels: 3,
      format: 'rgb',
      data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    };
  } catch (err) {
    throw new OutpostError(
      'RUNTIME_IMAGE_INVALID',
      `the ${kind} image could not be decoded: ${(err as Error).message}`,
      { format: kind, length: bytes.length },
    );
  }
}

function sniff(b: Uint8Array): 'jpeg' | 'png' | null {
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return 'png';
  return null;
}

/** Validates a raw frame from a caller (the one boundary for frames). */
export function parseFrame(v: unknown): RawFrame {
  const f = v as Partial<RawFrame> | null;
  const bad = (msg: string, details?: Record<string, unknown>) =>
    new OutpostError('RUNTIME_IMAGE_INVALID', `raw frame: ${msg}`, details);
  if (!f || typeof f !== 'object') throw bad('expected {width, height, channels, format, data}');
  const { width, height, channels, format, data } = f;
  if (!Number.isSafeInteger(width) || width! <= 0 || !Number.isSafeInteger(height) || height! <= 0)
    throw bad(`width and height must be positive integers, got ${width}x${height}`, { width, height });
  if (width! * height! > MAX_IMAGE_PIXELS)
    throw bad(`${width}x${height} exceeds ${MAX_IMAGE_PIXELS} pixels`, { width, height });
  if (channels !== 3 && channels !== 4) throw bad(`channels must be 3 or 4, got ${String(channels)}`, { channels });
  if (format !== 'rgb' && format !== 'bgr')
    throw bad(`format must be "rgb" or "bgr", got ${String(format)}`, { format });
  if (!(data instanceof Uint8Array)) throw bad('data must be a Uint8Array of interleaved 8-bit pixels');
  const want = width! * height! * channels;
  if (data.length !== want)
    throw bad(`data has ${data.length} bytes; ${width}x${height}x${channels} needs ${want}`, {
      length: data.length,
      expected: want,
    });
  return { width: width!, height: height!, channels, format, data };
}

export async function preprocess(input: Uint8Array | RawFrame, p: BlobParams): Promise<Preprocessed> {
  const frame = input instanceof Uint8Array ? await decodeImage(input) : parseFrame(input);
  return { ...blobFromFrame(frame, p), frame };
}

/**
 * What one (image size, parameters) pair needs besides the pixels: the resize taps, the
 * channel order and the level table. Camera frames arrive at one size, so the plan of the last
 * few shapes is kept and a call allocates nothing but its output tensor (the output is not
 * reused: it is handed to the backend, which may move it to a worker thread or keep it).
 */
interface Plan {
  key: string;
  w: number;
  h: number;
  /** Byte offset of the left/right tap of each output column within a source row, and their weights. */
  xa: Int32Array;
  xb: Int32Array;
  wa: Int32Array;
  wb: Int32Array;
  ys: Taps;
  /** Image channel read by blob channel 0, 1, 2. */
  c0: number;
  c1: number;
  c2: number;
  /** (level - mean[k]) * scalefactor at k * 256 + level. */
  lut: Float32Array;
  geometry: Geometry;
}

const PLANS_KEPT = 8;
const plans: Plan[] = [];

function planFor(frame: RawFrame, p: BlobParams): Plan {
  const key = `${frame.width}x${frame.height}x${frame.channels}${frame.format}|${p.size}|${p.mean}|${p.scalefactor}|${p.swaprb}|${p.crop}`;
  const at = plans.findIndex((q) => q.key === key);
  if (at >= 0) {
    const hit = plans[at]!;
    if (at > 0) {
      plans.splice(at, 1);
      plans.unshift(hit);
    }
    return hit;
  }
  const plan = makePlan(key, frame, p);
  plans.unshift(plan);
  if (plans.length > PLANS_KEPT) plans.pop();
  return plan;
}

/**
 * What blobFromImage does to a cols x rows image, without the pixels: the size cv::resize
 * produces, the scales it derives (dsize given, or fx/fy given with crop) and the crop window.
 */
function resizeShape(cols: number, rows: number, p: BlobParams) {
  const [w, h] = p.size;
  if (p.crop && (cols !== w || rows !== h)) {
    const f = Math.max(Math.fround(w / cols), Math.fround(h / rows));
    const dstW = roundEven(cols * f);
    const dstH = roundEven(rows * f);
    return { dstW, dstH, scaleX: f, scaleY: f, offX: Math.trunc(0.5 * (dstW - w)), offY: Math.trunc(0.5 * (dstH - h)) };
  }
  return { dstW: w, dstH: h, scaleX: w / cols, scaleY: h / rows, offX: 0, offY: 0 };
}

/** The geometry blobFromFrame reports for a cols x rows frame (the native path computes the same). */
export function blobGeometry(cols: number, rows: number, p: BlobParams): Geometry {
  const r = resizeShape(cols, rows, p);
  return {
    imageWidth: cols,
    imageHeight: rows,
    netWidth: p.size[0],
    netHeight: p.size[1],
    scaleX: r.scaleX,
    scaleY: r.scaleY,
    offsetX: r.offX,
    offsetY: r.offY,
  };
}

function makePlan(key: string, frame: RawFrame, p: BlobParams): Plan {
  const [w, h] = p.size;
  const { width: cols, height: rows, channels: cn } = frame;
  const { dstW, dstH, scaleX: invX, scaleY: invY, offX, offY } = resizeShape(cols, rows, p);
  const same = cols === dstW && rows === dstH;
  const xs = same ? identityTaps(w, offX) : linearTaps(cols, invX, offX, w);
  const ys = same ? identityTaps(h, offY) : linearTaps(rows, invY, offY, h, true);
  // Blob channel k reads image channel src[k]; the image is BGR (see the header comment).
  const bgrIndex = frame.format === 'bgr' ? [0, 1, 2] : [2, 1, 0];
  const [c0, c1, c2] = (p.swaprb ? [bgrIndex[2], bgrIndex[1], bgrIndex[0]] : bgrIndex) as [number, number, number];
  const lut = new Float32Array(3 * 256);
  for (let k = 0; k < 3; k++) for (let v = 0; v < 256; v++) lut[k * 256 + v] = level(v, p.mean[k]!, p.scalefactor);
  return {
    key,
    w,
    h,
    xa: xs.i0.map((i) => i * cn),
    xb: xs.i1.map((i) => i * cn),
    wa: xs.w0,
    wb: xs.w1,
    ys,
    c0,
    c1,
    c2,
    lut,
    geometry: blobGeometry(cols, rows, p),
  };
}

/**
 * blobFromImage on a validated frame; synchronous, one allocation (the output).
 * One fused pass per output row: both source rows' horizontal taps, the vertical blend, the
 * 8-bit rounding and the level table, written straight into the three CHW planes, with no
 * intermediate rows. Per element, as OpenCV's VResizeLinearVec_32s8u: the horizontal sums
 * u = s0*a0 + s1*a1 (weights out of 2048), then ((u >> 4) * b0 >> 16) + ((v >> 4) * b1 >> 16),
 * rounded by (+ 2) >> 2. Integer arithmetic, about 15-25% cheaper here than the exact-weight
 * float form it replaced, which was one level off on about 10% of elements.
 */
export function blobFromFrame(frame: RawFrame, p: BlobParams): { tensor: Tensor; geometry: Geometry } {
  const plan = planFor(frame, p);
  const { w, h, xa, xb, wa, wb, lut, c0, c1, c2 } = plan;
  const { i0: ya, i1: yb, w0: wy0, w1: wy1 } = plan.ys;
  const out = new Float32Array(3 * w * h);
  const plane = w * h;
  const src = frame.data;
  const stride = frame.width * frame.channels;
  for (let dy = 0; dy < h; dy++) {
    const ra = ya[dy]! * stride,
      rb = yb[dy]! * stride,
      b0 = wy0[dy]!,
      b1 = wy1[dy]!;
    let o = dy * w;
    for (let dx = 0; dx < w; dx++, o++) {
      const a0 = wa[dx]!,
        a1 = wb[dx]!,
        p0 = ra + xa[dx]!,
        p1 = ra + xb[dx]!,
        q0 = rb + xa[dx]!,
        q1 = rb + xb[dx]!;
      let u = src[p0 + c0]! * a0 + src[p1 + c0]! * a1,
        v = src[q0 + c0]! * a0 + src[q1 + c0]! * a1;
      out[o] = lut[((((u >> 4) * b0) >> 16) + (((v >> 4) * b1) >> 16) + 2) >> 2]!;
      u = src[p0 + c1]! * a0 + src[p1 + c1]! * a1;
      v = src[q0 + c1]! * a0 + src[q1 + c1]! * a1;
      out[plane + o] = lut[256 + (((((u >> 4) * b0) >> 16) + (((v >> 4) * b1) >> 16) + 2) >> 2)]!;
      u = src[p0 + c2]! * a0 + src[p1 + c2]! * a1;
      v = src[q0 + c2]! * a0 + src[q1 + c2]! * a1;
      out[2 * plane + o] = lut[512 + (((((u >> 4) * b0) >> 16) + (((v >> 4) * b1) >> 16) + 2) >> 2)]!;
    }
  }
  return { tensor: { dtype: 'float32', shape: [1, 3, h, w], data: out }, geometry: { ...plan.geometry } };
}

/**
 * One 8-bit level as blobFromImage turns it into the blob's float: `image -= mean` then
 * `image *= scalefactor` on the CV_32F image, each in float32 with the Scalar converted to float
 * first (a double product rounded once is one ulp off on a third of the elements at 1/255).
 * The product of two float32 values is exact in a double, so fround of it is the float product.
 */
export function level(v: number, mean: number, scalefactor: number): number {
  return Math.fround(Math.fround(v - Math.fround(mean)) * Math.fround(scalefactor));
}

/** INTER_RESIZE_COEF_SCALE: weights are integers out of 2048. */
const ONE = 2048;

interface Taps {
  i0: Int32Array;
  i1: Int32Array;
  /** Weights of i0 and i1, out of 2048. */
  w0: Int32Array;
  w1: Int32Array;
}

/** No resize (cv::resize is skipped); with crop the window still starts at `off`. */
function identityTaps(n: number, off: number): Taps {
  const i0 = Int32Array.from({ length: n }, (_, i) => i + off);
  return { i0, i1: i0, w0: new Int32Array(n).fill(ONE), w1: new Int32Array(n) };
}

/**
 * cv::resize INTER_LINEAR source taps for output positions off..off+n-1 of a dst-wide resize:
 * fx = float((d + 0.5) * scale - 0.5), sx = floor(fx); below 0 clamps to pixel 0, at or beyond
 * the last pixel clamps to it. scale = 1/inv as a double, as OpenCV computes it. The weights are
 * OpenCV's: saturate_cast<short>((1.f - fx) * 2048) and saturate_cast<short>(fx * 2048), rounded
 * half to even from float32.
 */
function linearTaps(srcLen: number, inv: number, off: number, n: number, vertical = false): Taps {
  const scale = 1 / inv;
  const i0 = new Int32Array(n),
    i1 = new Int32Array(n),
    w0 = new Int32Array(n),
    w1 = new Int32Array(n);
  for (let j = 0; j < n; j++) {
    const d = j + off;
    let fx = Math.fround((d + 0.5) * scale - 0.5);
    let sx = Math.floor(fx);
    fx -= sx;
    if (vertical) {
      // Rows keep their weights and clamp each tap to the image (resizeGeneric_Invoker); with
      // truncating SIMD arithmetic that is not always the same as weight 0 on a clamped row.
      i0[j] = Math.min(Math.max(sx, 0), srcLen - 1);
      i1[j] = Math.min(Math.max(sx + 1, 0), srcLen - 1);
      const f = Math.fround(fx);
      w0[j] = roundEven(Math.fround(1 - f) * ONE);
      w1[j] = roundEven(f * ONE);
      continue;
    }
    if (sx < 0) {
      sx = 0;
      fx = 0;
    }
    if (sx >= srcLen - 1) {
      sx = srcLen - 1;
      fx = 0;
    }
    i0[j] = sx;
    i1[j] = Math.min(sx + 1, srcLen - 1);
    const f = Math.fround(fx);
    w0[j] = roundEven(Math.fround(1 - f) * ONE);
    w1[j] = roundEven(f * ONE);
  }
  return { i0, i1, w0, w1 };
}

/** cvRound: round half to even, as saturate_cast<int>(double) does. */
function roundEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
