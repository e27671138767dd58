import { mkdtempSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DecodeMode } from '../../protocol/manifest-types.js';
import { type Logger, moduleLogger, silentLogger } from '../../protocol/log.js';
import { readJpegHeader } from './decode-jpeg-header.js';
import { decodeImage, type Geometry, MAX_IMAGE_PIXELS, type RawFrame } from './preprocess.js';

/**
 * The model's decode mode (`decode` in alwaysai.model.json; docs/runtime.md, "Decode mode"), on
 * the sharp path. Where the image addon is built, agent/runtime/prepare.ts decodes natively with
 * the same rule (decodeShrink) and the same cut, and comes here only for what it leaves to sharp.
 *
 * `auto` decodes a JPEG at libjpeg's reduced scale 1/k (DCT-domain scaling: each 8x8 block is
 * inverse-transformed straight to 8/k x 8/k pixels, so the decode skips most of the IDCT, the
 * upsampling and the colour conversion) when the image is at least twice the network input in
 * both dimensions. k is the largest of 2, 4, 8 that keeps the decoded image at least the network
 * input in both dimensions, so the INTER_LINEAR resize after it still only shrinks (it never
 * interpolates up from a too-small decode). This is Pillow's Image.draft() rule and sharp's
 * fastShrinkOnLoad rule. The pixels are exactly those of OpenCV's
 * cv2.imread(path, IMREAD_REDUCED_COLOR_k) (test/integration/runtime-decode-reduced-cv2.test.ts),
 * not those of a full decode: docs/performance.md has the table of what that changes.
 * `exact` always decodes at full size, as cv2.imread(path) does.
 *
 * Why a scratch file: sharp exposes libvips' jpegload `shrink` only in a file name's option
 * suffix (`frame.jpg[shrink=2]`). Through resize() it never gives the bare 1/k decode: sharp
 * halves the factor when the shrink is exactly k ("known libjpeg rounding errors", pipeline.cc)
 * and then resamples with its own kernel, which is neither OpenCV's reduced decode nor
 * INTER_LINEAR. A buffer input takes no options. So the bytes are written to a file in a
 * private folder (in /dev/shm where it is writable: memory, no disk or SD-card writes), decoded,
 * and unlinked at once. Every file has a new name: libvips caches loads by file name.
 */

export const JPEG_SCALES = [8, 4, 2] as const;
export type Shrink = 1 | 2 | 4 | 8;

/** The libjpeg scale denominator for an image of width x height (as displayed) into a network of size. */
export function decodeShrink(mode: DecodeMode, width: number, height: number, size: [number, number]): Shrink {
  if (mode === 'exact') return 1;
  const [w, h] = size;
  for (const k of JPEG_SCALES) if (Math.floor(width / k) >= w && Math.floor(height / k) >= h) return k;
  return 1;
}

export interface Decoded {
  frame: RawFrame;
  /** 1 for a full decode; k when the frame is the 1/k decode. */
  shrink: Shrink;
  /** The image's own size (EXIF orientation applied), which results are reported in. */
  width: number;
  height: number;
}

export interface DecodeOptions {
  mode: DecodeMode;
  /** [width, height] of the network input. */
  size: [number, number];
  maxPixels?: number;
  log?: Logger;
}

/** JPEG/PNG bytes -> the frame the model's pre-processing resizes, at the scale the mode picks. */
export async function decodeForNetwork(bytes: Uint8Array, opts: DecodeOptions): Promise<Decoded> {
  const maxPixels = opts.maxPixels ?? MAX_IMAGE_PIXELS;
  const plan =
    opts.mode === 'exact' || !(bytes instanceof Uint8Array) ? null : reducedPlan(bytes, opts.size, maxPixels);
  if (plan) {
    const frame = await decodeReduced(bytes, plan.shrink, maxPixels, opts.log);
    if (frame) return { frame, ...plan };
  }
  const frame = await decodeImage(bytes, { maxPixels });
  return { frame, shrink: 1, width: frame.width, height: frame.height };
}

/**
 * Geometry of a blob made from a 1/k decode, in the image's own pixels. libjpeg's reduced pixel
 * i covers the image's pixels [k*i, k*i + k), so a network coordinate maps to the decoded frame
 * as before and then times k. libvips keeps floor(cols/k) columns (OpenCV keeps ceil, the last
 * one from a partial block): at most k - 1 image pixels at the right and bottom edges are not
 * seen, and results stay clamped to the whole image.
 */
export function imageGeometry(g: Geometry, d: Pick<Decoded, 'shrink' | 'width' | 'height'>): Geometry {
  if (d.shrink === 1) return g;
  return { ...g, imageWidth: d.width, imageHeight: d.height, scaleX: g.scaleX / d.shrink, scaleY: g.scaleY / d.shrink };
}

/**
 * The shrink for a JPEG and its displayed size, from its header; null for a full decode (PNG,
 * no shrink fits, or a header the full decode should judge with its own message).
 */
function reducedPlan(bytes: Uint8Array, size: [number, number], maxPixels: number): Omit<Decoded, 'frame'> | null {
  const m = readJpegHeader(bytes);
  if (!m || m.width * m.height > maxPixels) return null;
  // Orientations 5-8 turn the image by 90 degrees: the displayed size is the stored one swapped.
  const turned = m.orientation >= 5;
  const width = turned ? m.height : m.width;
  const height = turned ? m.width : m.height;
  const shrink = decodeShrink('auto', width, height, size);
  return shrink === 1 ? null : { shrink, width, height };
}

/** Files up to this size are written and removed synchronously when the folder is in memory. */
const SYNC_WRITE_BYTES = 4 * 1024 * 1024;

let scratch: { dir: string; memory: boolean } | null | undefined;
let serial = 0;
let warned = false;

function scratchDir(): { dir: string; memory: boolean } | null {
  if (scratch !== undefined) return scratch;
  for (const base of ['/dev/shm', tmpdir()]) {
    try {
      removeStale(base);
      const dir = mkdtempSync(join(base, `outpost-decode-${process.pid}-`));
      process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
      scratch = { dir, memory: base === '/dev/shm' };
      return scratch;
    } catch {
      // not writable here (a read-only /dev/shm): try the next place
    }
  }
  scratch = null;
  return null;
}

/**
 * Folders of processes that are gone (killed before their exit handler ran): each is empty or
 * holds the one file a decode had in flight. Only this prefix, only dead process ids.
 */
function removeStale(base: string): void {
  for (const name of readdirSync(base)) {
    const m = /^outpost-decode-(\d+)-/.exec(name);
    if (!m || Number(m[1]) === process.pid) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') rmSync(join(base, name), { recursive: true, force: true });
    }
  }
}

/** The 1/k decode, or null when no scratch file could be written (the caller decodes in full). */
async function decodeReduced(
  bytes: Uint8Array,
  k: Shrink,
  maxPixels: number,
  log: Logger | undefined,
): Promise<RawFrame | null> {
  const where = scratchDir();
  const file = where && join(where.dir, `${serial++}.jpg`);
  // A write to memory of a camera frame takes tens of microseconds: less than the thread-pool
  // round trip of an asynchronous write, so it is done in place; large bodies and disk folders
  // go through the pool.
  const sync = !!where?.memory && bytes.length <= SYNC_WRITE_BYTES;
  const remove = async () => {
    if (!file) return;
    if (sync) {
      try {
        unlinkSync(file);
      } catch {
        // already gone
      }
    } else await unlink(file).catch(() => {});
  };
  try {
    if (!file) throw new Error('no writable folder in /dev/shm or the temporary folder');
    if (sync) writeFileSync(file, bytes, { mode: 0o600 });
    else await writeFile(file, bytes, { mode: 0o600 });
  } catch (err) {
    if (!warned) {
      warned = true;
      moduleLogger(log ?? silentLogger, 'runtime.decode').warn(
        { err: (err as Error).message },
        'reduced-scale JPEG decode unavailable (no scratch file); decoding at full size',
      );
    }
    await remove();
    return null;
  }
  try {
    return await decodeImage(bytes, { maxPixels, source: `${file}[shrink=${k}]` });
  } finally {
    await remove();
  }
}
