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
 * OpenCV computes the interpolation weights in 11-bit fixed point; Outpost computes them exactly,
 * so a resized pixel can differ by one 8-bit level (see test/integration/runtime-preprocess-cv2.test.ts).
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

/** Decodes JPEG or PNG bytes to an RGB frame, applying EXIF orientation as cv2.imread does. */
export async function decodeImage(bytes: Uint8Array, opts: { maxPixels?: number } = {}): Promise<RawFrame> {
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
    const { data, info } = await sharp(bytes, { limitInputPixels: opts.maxPixels ?? MAX_IMAGE_PIXELS, failOn: 'error' })
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

/** blobFromImage on a validated frame; synchronous and allocation-light (one output array). */
export function blobFromFrame(frame: RawFrame, p: BlobParams): { tensor: Tensor; geometry: Geometry } {
  const [w, h] = p.size;
  const { width: cols, height: rows } = frame;
  let dstW = w,
    dstH = h,
    scaleX = w / cols,
    scaleY = h / rows,
    offX = 0,
    offY = 0;
  // Inverse scales exactly as cv::resize derives them (dsize given, or fx/fy given with crop).
  let invX = w / cols,
    invY = h / rows;
  if (p.crop && (cols !== w || rows !== h)) {
    const f = Math.max(Math.fround(w / cols), Math.fround(h / rows));
    dstW = roundEven(cols * f);
    dstH = roundEven(rows * f);
    invX = invY = scaleX = scaleY = f;
    offX = Math.trunc(0.5 * (dstW - w));
    offY = Math.trunc(0.5 * (dstH - h));
  }
  const same = cols === dstW && rows === dstH;
  const xs = same ? identityTaps(w, offX) : linearTaps(cols, dstW, invX, offX, w);
  const ys = same ? identityTaps(h, offY) : linearTaps(rows, dstH, invY, offY, h);

  // Blob channel k reads image channel src[k]; the image is BGR (see the header comment).
  const bgrIndex = frame.format === 'bgr' ? [0, 1, 2] : [2, 1, 0];
  const order = p.swaprb ? [bgrIndex[2]!, bgrIndex[1]!, bgrIndex[0]!] : bgrIndex;
  const out = new Float32Array(3 * w * h);
  const plane = w * h;
  const cn = frame.channels;
  const src = frame.data;
  const rowA = new Float64Array(w * 3);
  const rowB = new Float64Array(w * 3);
  // (level - mean[k]) * scalefactor for the 256 levels of each channel, computed as the loop
  // would compute it (double, then stored as float32): the same bits, one lookup per element.
  const lut = new Float32Array(3 * 256);
  for (let k = 0; k < 3; k++) for (let v = 0; v < 256; v++) lut[k * 256 + v] = (v - p.mean[k]!) * p.scalefactor;
  const [c0, c1, c2] = order as [number, number, number];
  for (let dy = 0; dy < h; dy++) {
    const y0 = ys.i0[dy]!,
      y1 = ys.i1[dy]!,
      fy = ys.f[dy]!;
    hpass(src, cols, cn, y0, xs, rowA);
    const base = dy * w;
    if (fy === 0) {
      for (let dx = 0, j = 0; dx < w; dx++, j += 3) {
        out[base + dx] = lut[Math.round(rowA[j + c0]!)]!;
        out[plane + base + dx] = lut[256 + Math.round(rowA[j + c1]!)]!;
        out[2 * plane + base + dx] = lut[512 + Math.round(rowA[j + c2]!)]!;
      }
      continue;
    }
    hpass(src, cols, cn, y1, xs, rowB);
    for (let dx = 0, j = 0; dx < w; dx++, j += 3) {
      // Round to 8 bits like cv::resize's CV_8U output, then convert, subtract, scale (the LUT).
      const a0 = rowA[j + c0]!,
        a1 = rowA[j + c1]!,
        a2 = rowA[j + c2]!;
      out[base + dx] = lut[Math.round(a0 + (rowB[j + c0]! - a0) * fy)]!;
      out[plane + base + dx] = lut[256 + Math.round(a1 + (rowB[j + c1]! - a1) * fy)]!;
      out[2 * plane + base + dx] = lut[512 + Math.round(a2 + (rowB[j + c2]! - a2) * fy)]!;
    }
  }
  return {
    tensor: { dtype: 'float32', shape: [1, 3, h, w], data: out },
    geometry: {
      imageWidth: cols,
      imageHeight: rows,
      netWidth: w,
      netHeight: h,
      scaleX,
      scaleY,
      offsetX: offX,
      offsetY: offY,
    },
  };
}

interface Taps {
  i0: Int32Array;
  i1: Int32Array;
  f: Float64Array;
}

/** No resize (cv::resize is skipped); with crop the window still starts at `off`. */
function identityTaps(n: number, off: number): Taps {
  const i0 = Int32Array.from({ length: n }, (_, i) => i + off);
  return { i0, i1: i0, f: new Float64Array(n) };
}

/**
 * cv::resize INTER_LINEAR source taps for output positions off..off+n-1 of a dst-wide resize:
 * fx = float((d + 0.5) * scale - 0.5), sx = floor(fx); below 0 clamps to pixel 0, at or beyond
 * the last pixel clamps to it. scale = 1/inv as a double, as OpenCV computes it.
 */
function linearTaps(srcLen: number, dstLen: number, inv: number, off: number, n: number): Taps {
  const scale = 1 / inv;
  const i0 = new Int32Array(n),
    i1 = new Int32Array(n),
    f = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    const d = j + off;
    let fx = Math.fround((d + 0.5) * scale - 0.5);
    let sx = Math.floor(fx);
    fx -= sx;
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
    f[j] = Math.fround(fx);
  }
  void dstLen;
  return { i0, i1, f };
}

/** Horizontal pass of one source row into `out` (3 interleaved channels per output column). */
function hpass(src: Uint8Array, cols: number, cn: number, y: number, xs: Taps, out: Float64Array): void {
  const base = y * cols * cn;
  const { i0, i1, f } = xs;
  for (let j = 0, o = 0; j < i0.length; j++, o += 3) {
    const a = base + i0[j]! * cn,
      fx = f[j]!;
    if (fx === 0) {
      out[o] = src[a]!;
      out[o + 1] = src[a + 1]!;
      out[o + 2] = src[a + 2]!;
    } else {
      const b = base + i1[j]! * cn;
      const v0 = src[a]!,
        v1 = src[a + 1]!,
        v2 = src[a + 2]!;
      out[o] = v0 + (src[b]! - v0) * fx;
      out[o + 1] = v1 + (src[b + 1]! - v1) * fx;
      out[o + 2] = v2 + (src[b + 2]! - v2) * fx;
    }
  }
}

/** cvRound: round half to even, as saturate_cast<int>(double) does. */
function roundEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
