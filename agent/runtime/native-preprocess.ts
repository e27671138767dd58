import type { Tensor } from './backend.js';
import { type AddonLoad, loadAddon } from './backends/native-loader.js';
import { readJpegHeader, readPngHeader } from './decode-jpeg-header.js';
import { type BlobParams, MAX_IMAGE_PIXELS, type RawFrame } from './preprocess.js';
import type { Shrink } from './decode.js';

/**
 * The native pre-processing addon (addons/image/image.cc, `outpost_image`): decode + resize +
 * blob in one Node-API async call on a libuv pool thread, with OpenCV's imgcodecs and imgproc,
 * so the pixels and the resize are cv2's by construction (docs/performance.md, "Round 6: native pre-processing").
 *
 * This module is its one boundary. Everything the C++ would have to trust is decided here first:
 *   - a JPEG goes native only when its frame header reads (readJpegHeader), it ends with EOI
 *     (libjpeg fills a truncated file with gray and calls it a warning; sharp refuses it), and
 *     its stored size is within the pixel limit; a PNG only when its IHDR reads, it ends with
 *     IEND, and the same limit holds. Anything else returns null and the caller decodes with
 *     sharp, which refuses what it must with today's message: so a header claiming 60000x60000
 *     never reaches an allocation here (the socket's admission refuses it even before that);
 *   - outputs come from a small pool (released by the caller once the backend has read them);
 *   - at most IN_FLIGHT calls run at once (the libuv pool's size), so queued requests hold
 *     their compressed bytes, never a decoded frame or a blob.
 */
interface ImageBinding {
  abi: number;
  /** The OpenCV version it was built against. */
  opencv: string;
  blob(src: Uint8Array, spec: NativeSpec, out: Float32Array): Promise<{ width: number; height: number }>;
}

interface NativeSpec {
  raw: boolean;
  shrink: Shrink;
  /** 0: imdecode applies the file's EXIF orientation; 1-8: this one, after the reduced decode's cut. */
  orientation: number;
  /** Raw frame size, or an encoded image's stored size (the reduced decode's cut). */
  width: number;
  height: number;
  channels: 3 | 4;
  rgb: boolean;
  maxPixels: number;
  netWidth: number;
  netHeight: number;
  mean: [number, number, number];
  scalefactor: number;
  swaprb: boolean;
  crop: boolean;
  letterbox: boolean;
}

/** An encoded image's plan, read from its header: what the native decode will produce. */
export interface EncodedPlan {
  kind: 'jpeg' | 'png';
  /** Stored size (before orientation). */
  width: number;
  height: number;
  /** 1-8; PNG: 0 (imdecode's own). */
  orientation: number;
}

export interface NativeBlob {
  tensor: Tensor;
  /** The frame the blob was made from (decoded, cut and turned), as a frame's geometry is computed. */
  frameWidth: number;
  frameHeight: number;
  /** Gives the output back to the pool; call once the backend no longer reads the tensor. */
  release(): void;
}

let addon: AddonLoad<ImageBinding> | undefined;

/** The binding, or why there is none. `OUTPOST_PREPROCESS=sharp` forces the fallback. */
export function nativeImage(env: NodeJS.ProcessEnv = process.env): AddonLoad<ImageBinding> {
  if (env.OUTPOST_PREPROCESS === 'sharp')
    return { ok: false, reason: 'OUTPOST_PREPROCESS=sharp: decoding with sharp, resizing in TypeScript' };
  addon ??= loadAddon<ImageBinding>('outpost_image');
  return addon;
}

/** The header facts of a JPEG/PNG the native path takes, or null (the caller uses sharp). */
export function encodedPlan(b: Uint8Array, maxPixels = MAX_IMAGE_PIXELS): EncodedPlan | null {
  const n = b.length;
  if (n > 4 && b[0] === 0xff && b[1] === 0xd8) {
    const h = readJpegHeader(b);
    if (!h || h.width * h.height > maxPixels || b[n - 2] !== 0xff || b[n - 1] !== 0xd9) return null;
    return { kind: 'jpeg', ...h };
  }
  // IHDR first (readPngHeader); IEND (then its CRC) last, or the file is truncated.
  const png = readPngHeader(b);
  if (!png || n < 45) return null;
  if (b[n - 8] !== 0x49 || b[n - 7] !== 0x45 || b[n - 6] !== 0x4e || b[n - 5] !== 0x44) return null; // "IEND"
  const { width, height } = png;
  if (width * height > maxPixels) return null;
  return { kind: 'png', width, height, orientation: 0 };
}

/** Bounded, by length: camera frames come at one network size, so a handful of arrays serve all. */
const POOL_PER_SIZE = 4;
const POOL_SIZES = 4;
const pool = new Map<number, Float32Array[]>();

function take(length: number): Float32Array {
  return pool.get(length)?.pop() ?? new Float32Array(length);
}

function give(a: Float32Array): void {
  // A buffer a backend transferred to a worker comes back detached (length 0): drop it.
  if (a.length === 0) return;
  let free = pool.get(a.length);
  if (!free) {
    if (pool.size >= POOL_SIZES) pool.delete(pool.keys().next().value!);
    free = [];
    pool.set(a.length, free);
  }
  if (free.length < POOL_PER_SIZE && !free.includes(a)) free.push(a);
}

const IN_FLIGHT = Math.max(1, Number(process.env.UV_THREADPOOL_SIZE) || 4);
let running = 0;
const waiting: (() => void)[] = [];

async function slot<T>(run: () => Promise<T>): Promise<T> {
  if (running >= IN_FLIGHT) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  try {
    return await run();
  } finally {
    running--;
    waiting.shift()?.();
  }
}

export interface NativeRequest {
  /** Encoded bytes with their plan and the libjpeg scale, or a validated raw frame. */
  source: { bytes: Uint8Array; plan: EncodedPlan; shrink: Shrink } | { frame: RawFrame };
  params: BlobParams;
  letterbox: boolean;
  maxPixels?: number;
}

/** Decode (or take the frame), resize and make the blob natively. Rejects with a coded error. */
export async function nativeBlob(binding: ImageBinding, r: NativeRequest): Promise<NativeBlob> {
  const [w, h] = r.params.size;
  const { mean, scalefactor, swaprb, crop } = r.params;
  const common = { maxPixels: r.maxPixels ?? MAX_IMAGE_PIXELS, netWidth: w, netHeight: h, mean, scalefactor, swaprb };
  const blob = { ...common, crop, letterbox: r.letterbox };
  let src: Uint8Array;
  let spec: NativeSpec;
  if ('frame' in r.source) {
    const f = r.source.frame;
    src = f.data;
    spec = {
      ...blob,
      raw: true,
      shrink: 1,
      orientation: 0,
      width: f.width,
      height: f.height,
      channels: f.channels,
      rgb: f.format === 'rgb',
    };
  } else {
    const { bytes, plan, shrink } = r.source;
    src = bytes;
    // A full decode lets imdecode orient (cv2.imread's own EXIF reading); a reduced one is cut
    // to libvips' size first and then turned with the header's orientation, as libvips does.
    const orientation = shrink > 1 ? plan.orientation : 0;
    spec = {
      ...blob,
      raw: false,
      shrink,
      orientation,
      width: plan.width,
      height: plan.height,
      channels: 3,
      rgb: false,
    };
  }
  const out = take(3 * w * h);
  try {
    const { width, height } = await slot(() => binding.blob(src, spec, out));
    return {
      tensor: { dtype: 'float32', shape: [1, 3, h, w], data: out },
      frameWidth: width,
      frameHeight: height,
      release: () => give(out),
    };
  } catch (err) {
    give(out);
    const { toOutpostError } = await import('../../protocol/errors/index.js');
    throw toOutpostError(err);
  }
}
