import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Shrink } from '../../agent/runtime/decode.js';
import { encodedPlan, nativeImage } from '../../agent/runtime/native-preprocess.js';
import { type Prepared, prepareInput } from '../../agent/runtime/prepare.js';
import type { RawFrame } from '../../agent/runtime/preprocess.js';
import { IMAGE_KINDS, jpegOf } from '../fixtures/cv2/jpegs.js';
import { pythonWithCv2 } from '../fixtures/cv2/python.js';
import { casesOf, type DecodeCase, PARAM_SETS, writeReferences } from '../fixtures/cv2/cases.js';
import { noiseImage } from '../fixtures/images.js';
import { skipForPackage } from '../helpers/requires.js';

/**
 * The native pre-processing path (addons/image, OpenCV imgcodecs + imgproc) against cv2 itself
 * and against the sharp fallback, on real files:
 *   - blobs against cv2.imread(path[, IMREAD_REDUCED_COLOR_k]) + cv2.dnn.blobFromImage
 *     (test/fixtures/cv2/decode_reduced.py) for both decode modes: camera-like and textured
 *     JPEGs, odd sizes, 1/2, 1/4, 1/8, EXIF-rotated JPEGs, a grayscale JPEG, RGB, RGBA, gray and
 *     EXIF-rotated PNGs; and raw frames of the same pixels against the PNG's reference;
 *   - blobs and geometry against the sharp + TypeScript path (the fallback a device without the
 *     addon runs), letterbox included, so a model answers the same on either;
 *   - what the native path leaves to sharp (a truncated file, a header beyond the pixel limit),
 *     the forced fallback (OUTPOST_PREPROCESS=sharp), the pool and the asynchronous call.
 */
const py = pythonWithCv2();
const addon = nativeImage({});
const why = 'reason' in py ? py.reason : addon.ok ? null : addon.reason;

interface Img {
  name: string;
  make: () => Promise<Buffer>;
  /** Network size and the scale `auto` must pick. */
  size: [number, number];
  shrink: Shrink;
}

const camera = (w: number, h: number, seed: number) => IMAGE_KINDS['camera-like'](w, h, seed);
const rgbInput = (w: number, h: number, seed: number) => {
  const im = camera(w, h, seed);
  return sharp(Buffer.from(im.data), { raw: { width: w, height: h, channels: 3 } });
};
const IMAGES: Img[] = [
  { name: 'camera 1280x720', make: () => jpegOf(camera(1280, 720, 1), 90, '4:2:0'), size: [300, 300], shrink: 2 },
  {
    name: 'textured 1280x720',
    make: () => jpegOf(IMAGE_KINDS.textured(1280, 720, 2), 90, '4:2:0'),
    size: [300, 300],
    shrink: 2,
  },
  { name: 'camera 1281x719 (odd)', make: () => jpegOf(camera(1281, 719, 3), 90, '4:2:0'), size: [300, 300], shrink: 2 },
  {
    name: 'textured 1283x725 4:4:4',
    make: () => jpegOf(IMAGE_KINDS.textured(1283, 725, 4), 90, '4:4:4'),
    size: [150, 90],
    shrink: 8,
  },
  { name: 'camera 1920x1080', make: () => jpegOf(camera(1920, 1080, 5), 85, '4:2:0'), size: [224, 224], shrink: 4 },
  {
    name: 'EXIF 6 (turned 90)',
    make: () => rgbInput(1280, 720, 6).withMetadata({ orientation: 6 }).jpeg({ quality: 90 }).toBuffer(),
    size: [300, 300],
    shrink: 2,
  },
  {
    name: 'EXIF 3 (turned 180)',
    make: () => rgbInput(1280, 720, 7).withMetadata({ orientation: 3 }).jpeg({ quality: 90 }).toBuffer(),
    size: [300, 300],
    shrink: 2,
  },
  {
    name: 'EXIF 8 (turned 270)',
    make: () => rgbInput(640, 480, 8).withMetadata({ orientation: 8 }).jpeg({ quality: 90 }).toBuffer(),
    size: [160, 120],
    shrink: 2,
  },
  {
    name: 'grayscale JPEG',
    make: () => rgbInput(1280, 720, 9).grayscale().jpeg({ quality: 90 }).toBuffer(),
    size: [300, 300],
    shrink: 2,
  },
  { name: 'RGB PNG 641x479', make: () => rgbInput(641, 479, 10).png().toBuffer(), size: [300, 300], shrink: 1 },
  {
    name: 'RGBA PNG',
    make: () => rgbInput(320, 240, 11).ensureAlpha(0.5).png().toBuffer(),
    size: [224, 224],
    shrink: 1,
  },
  {
    name: 'EXIF 6 PNG',
    make: () => rgbInput(320, 240, 13).withMetadata({ orientation: 6 }).png().toBuffer(),
    size: [100, 100],
    shrink: 1,
  },
  { name: 'gray PNG', make: () => rgbInput(300, 200, 12).grayscale().png().toBuffer(), size: [128, 128], shrink: 1 },
];
const PARAMS = PARAM_SETS;

const differing = (a: Float32Array, b: Float32Array) => {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
};
const f32 = (t: Prepared) => t.tensor.data as Float32Array;

describe.skipIf(skipForPackage(why))('native pre-processing (OpenCV) vs cv2 and vs the sharp fallback', () => {
  let dir: string;
  const cases: DecodeCase[] = [];
  const bytes: Buffer[] = [];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'outpost-native-pre-'));
    for (const [i, im] of IMAGES.entries()) {
      const b = await im.make();
      const file = join(dir, `img${i}.${b[0] === 0x89 ? 'png' : 'jpg'}`);
      await writeFile(file, b);
      bytes.push(b);
      cases.push(...casesOf(dir, i, file, im, cases.length, false));
    }
    writeReferences((py as { python: string }).python, cases);
  }, 180_000);
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("gives cv2's blob bit for bit, in both decode modes, for every image", async () => {
    const rows: string[] = [];
    for (const c of cases) {
      const got = await prepareInput(bytes[c.image]!, { mode: c.mode, params: c.params, letterbox: false });
      expect(got.path).toBe('native');
      const want = new Float32Array((await readFile(c.out)).buffer.slice(0));
      expect(got.tensor.data.length).toBe(want.length);
      rows.push(`${IMAGES[c.image]!.name} ${c.mode} 1/${c.shrink} crop=${c.params.crop}: ${differing(f32(got), want)}`);
      got.release();
    }
    expect(rows.filter((r) => !r.endsWith(': 0'))).toEqual([]);
  });

  it('gives the blob and the geometry of the sharp fallback (stretch, crop, letterbox)', async () => {
    for (const c of cases) {
      for (const letterbox of [false, true]) {
        const o = { mode: c.mode, params: c.params, letterbox };
        const native = await prepareInput(bytes[c.image]!, o);
        const fallback = await prepareInput(bytes[c.image]!, { ...o, native: false });
        expect([native.path, fallback.path]).toEqual(['native', 'sharp']);
        const what = `${IMAGES[c.image]!.name} ${c.mode} ${JSON.stringify(c.params)} letterbox=${letterbox}`;
        expect({ what, geometry: native.geometry }).toEqual({ what, geometry: fallback.geometry });
        expect({ what, differ: differing(f32(native), f32(fallback)) }).toEqual({ what, differ: 0 });
        native.release();
      }
    }
  });

  it("makes a raw frame's blob natively: cv2's blob of the same pixels as PNG, and the TypeScript one", async () => {
    for (const c of cases) {
      if (!c.file.endsWith('.png') || IMAGES[c.image]!.name !== 'RGB PNG 641x479') continue;
      const { data, info } = await sharp(bytes[c.image]!).raw().toBuffer({ resolveWithObject: true });
      const rgb: RawFrame = { width: info.width, height: info.height, channels: 3, format: 'rgb', data };
      const bgr = new Uint8Array(data.length);
      for (let i = 0; i < data.length; i += 3)
        [bgr[i], bgr[i + 1], bgr[i + 2]] = [data[i + 2]!, data[i + 1]!, data[i]!];
      const bgra = new Uint8Array((data.length / 3) * 4);
      for (let i = 0, j = 0; i < data.length; i += 3, j += 4) bgra.set([bgr[i]!, bgr[i + 1]!, bgr[i + 2]!, 9], j);
      const want = new Float32Array((await readFile(c.out)).buffer.slice(0));
      const frames: RawFrame[] = [
        rgb,
        { ...rgb, format: 'bgr', data: bgr },
        { ...rgb, channels: 4, format: 'bgr', data: bgra },
      ];
      for (const frame of frames) {
        const got = await prepareInput(frame, { mode: 'auto', params: c.params, letterbox: false });
        expect(got.path).toBe('native');
        expect(differing(f32(got), want)).toBe(0);
        const ts = await prepareInput(frame, { mode: 'auto', params: c.params, letterbox: true, native: false });
        const nat = await prepareInput(frame, { mode: 'auto', params: c.params, letterbox: true });
        expect(differing(f32(nat), f32(ts))).toBe(0);
        expect(nat.geometry).toEqual(ts.geometry);
      }
    }
  });

  it('leaves to sharp what it must refuse: truncated files, headers beyond the pixel limit', async () => {
    const jpeg = bytes[0]!;
    const opts = {
      mode: 'auto' as const,
      params: { ...PARAMS[0]!, size: [300, 300] as [number, number] },
      letterbox: false,
    };
    expect(encodedPlan(jpeg.subarray(0, 5000))).toBeNull();
    await expect(prepareInput(jpeg.subarray(0, 5000), opts)).rejects.toMatchObject({ code: 'RUNTIME_IMAGE_INVALID' });
    // The frame header says 60000x60000 (3.6 G pixels): refused before any pixel buffer exists.
    const huge = Buffer.from(jpeg);
    const sof = huge.indexOf(Buffer.from([0xff, 0xc0]));
    huge.writeUInt16BE(60000, sof + 5);
    huge.writeUInt16BE(60000, sof + 7);
    expect(encodedPlan(huge)).toBeNull();
    await expect(prepareInput(huge, opts)).rejects.toMatchObject({
      code: 'RUNTIME_IMAGE_INVALID',
      message: expect.stringMatching(/pixel limit/),
    });
    // The same for a PNG: cut before its IEND, or an IHDR claiming 60000x60000.
    const png = bytes[IMAGES.findIndex((im) => im.name === 'RGB PNG 641x479')]!;
    expect(encodedPlan(png)).toMatchObject({ kind: 'png', width: 641, height: 479 });
    expect(encodedPlan(png.subarray(0, png.length - 20))).toBeNull();
    await expect(prepareInput(png.subarray(0, png.length - 20), opts)).rejects.toMatchObject({
      code: 'RUNTIME_IMAGE_INVALID',
    });
    const hugePng = Buffer.from(png);
    hugePng.writeUInt32BE(60000, 16);
    hugePng.writeUInt32BE(60000, 20);
    expect(encodedPlan(hugePng)).toBeNull();
    await expect(prepareInput(hugePng, opts)).rejects.toMatchObject({ code: 'RUNTIME_IMAGE_INVALID' });
    // Not an image at all: the same code as the fallback's.
    await expect(prepareInput(new Uint8Array([1, 2, 3, 4]), opts)).rejects.toMatchObject({
      code: 'RUNTIME_IMAGE_INVALID',
    });
  });

  it('OUTPOST_PREPROCESS=sharp forces the fallback; outputs are pooled; the call never runs on the JS thread', async () => {
    expect(nativeImage({ OUTPOST_PREPROCESS: 'sharp' })).toMatchObject({ ok: false });
    const opts = {
      mode: 'auto' as const,
      params: { ...PARAMS[0]!, size: [300, 300] as [number, number] },
      letterbox: false,
    };
    const a = await prepareInput(bytes[0]!, opts);
    const first = a.tensor.data;
    a.release();
    const b = await prepareInput(bytes[0]!, opts);
    expect(b.tensor.data).toBe(first);
    // Not released: the next call gets another array.
    const c = await prepareInput(bytes[0]!, opts);
    expect(c.tensor.data).not.toBe(first);
    // Still pending when the microtasks queued after it have run: the work is on a pool thread.
    const pending = prepareInput(bytes[1]!, opts);
    expect(await Promise.race([pending.then(() => 'settled'), Promise.resolve('pending')])).toBe('pending');
    // Many at once (more than the pool's threads): all complete, all the same blob.
    const many = await Promise.all(Array.from({ length: 10 }, () => prepareInput(bytes[1]!, opts)));
    const ref = f32(await pending);
    for (const m of many) expect(differing(f32(m), ref)).toBe(0);
    const frame: RawFrame = { ...noiseImage(64, 48, 3), channels: 3 };
    await expect(
      prepareInput({ ...frame, data: frame.data.subarray(1) }, { ...opts, params: { ...opts.params, size: [32, 32] } }),
    ).rejects.toMatchObject({ code: 'RUNTIME_IMAGE_INVALID' });
  });
});
