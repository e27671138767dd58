import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Decoded, decodeForNetwork, type Shrink } from '../../agent/runtime/decode.js';
import { blobFromFrame } from '../../agent/runtime/preprocess.js';
import { type Chroma, IMAGE_KINDS, type ImageKind, jpegOf } from '../fixtures/cv2/jpegs.js';
import { pythonWithCv2 } from '../fixtures/cv2/python.js';
import { casesOf, type DecodeCase, writeReferences } from '../fixtures/cv2/cases.js';
import { skipForPackage } from '../helpers/requires.js';

/**
 * The two decode modes on real JPEG files, against OpenCV doing the same (Debian's
 * python3-opencv, whose libjpeg-turbo is not sharp's mozjpeg build):
 *   - `auto` against cv2.imread(path, IMREAD_REDUCED_COLOR_k) + cv2.dnn.blobFromImage, with the
 *     k Outpost picked; the reduced image cut to floor(cols/k) x floor(rows/k), which is what
 *     libvips keeps (libjpeg rounds up; see test/fixtures/cv2/decode_reduced.py);
 *   - `exact` against cv2.imread(path) + cv2.dnn.blobFromImage.
 * The decoded pixels are compared too: both libraries' decodes are the same libjpeg-turbo code
 * (islow IDCT, fancy upsampling), and they come out identical, full size and reduced. The blobs
 * are then within the one level of runtime-preprocess-cv2.test.ts (measured: identical, as the
 * resize computes OpenCV's arithmetic; at most 1% one level off is allowed, as there).
 * Camera-like and textured images, 4:2:0 and 4:4:4 chroma, sizes that divide by k and odd ones,
 * every scale 1/2, 1/4, 1/8 and the fallback to a full decode when no scale fits.
 */
const py = pythonWithCv2();

interface Img {
  kind: ImageKind;
  width: number;
  height: number;
  chroma: Chroma;
  quality: number;
  /** Network sizes and the scale `auto` must pick for each. */
  nets: { size: [number, number]; shrink: Shrink }[];
}
const IMAGES: Img[] = [
  {
    kind: 'camera-like',
    width: 1280,
    height: 720,
    chroma: '4:2:0',
    quality: 90,
    nets: [{ size: [300, 300], shrink: 2 }],
  },
  { kind: 'textured', width: 1280, height: 720, chroma: '4:2:0', quality: 90, nets: [{ size: [300, 300], shrink: 2 }] },
  {
    kind: 'camera-like',
    width: 1920,
    height: 1080,
    chroma: '4:4:4',
    quality: 90,
    nets: [
      { size: [300, 300], shrink: 2 },
      { size: [224, 224], shrink: 4 },
    ],
  },
  {
    kind: 'textured',
    width: 1920,
    height: 1080,
    chroma: '4:2:0',
    quality: 80,
    nets: [{ size: [224, 224], shrink: 4 }],
  },
  {
    kind: 'camera-like',
    width: 640,
    height: 480,
    chroma: '4:2:0',
    quality: 90,
    nets: [
      { size: [300, 300], shrink: 1 },
      { size: [160, 120], shrink: 4 },
    ],
  },
  {
    kind: 'camera-like',
    width: 1281,
    height: 719,
    chroma: '4:2:0',
    quality: 90,
    nets: [{ size: [300, 300], shrink: 2 }],
  },
  { kind: 'textured', width: 1283, height: 725, chroma: '4:4:4', quality: 90, nets: [{ size: [150, 90], shrink: 8 }] },
  {
    kind: 'camera-like',
    width: 2592,
    height: 1944,
    chroma: '4:2:0',
    quality: 85,
    nets: [{ size: [300, 300], shrink: 4 }],
  },
];
type Case = DecodeCase & { pixels: string };

describe.skipIf(skipForPackage('reason' in py ? py.reason : null))(
  'decode modes vs cv2.imread (+ IMREAD_REDUCED_COLOR_k)',
  () => {
    let dir: string;
    const cases: Case[] = [];
    const files: string[] = [];
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'outpost-decode-cv2-'));
      for (const [i, im] of IMAGES.entries()) {
        const file = join(dir, `img${i}.jpg`);
        await writeFile(file, await jpegOf(IMAGE_KINDS[im.kind](im.width, im.height, i + 1), im.quality, im.chroma));
        files.push(file);
        for (const net of im.nets) cases.push(...(casesOf(dir, i, file, net, cases.length, true) as Case[]));
      }
      writeReferences((py as { python: string }).python, cases);
    }, 180_000);
    afterAll(async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    const decodeCase = async (c: Case): Promise<Decoded> =>
      decodeForNetwork(await readFile(c.file), { mode: c.mode, size: c.params.size });

    it('auto picks the largest of 1/2, 1/4, 1/8 that keeps the network size; exact always decodes in full', async () => {
      for (const c of cases) {
        const d = await decodeCase(c);
        const im = IMAGES[c.image]!;
        expect({ file: c.file, mode: c.mode, size: c.params.size, shrink: d.shrink }).toEqual({
          file: c.file,
          mode: c.mode,
          size: c.params.size,
          shrink: c.shrink,
        });
        expect([d.width, d.height]).toEqual([im.width, im.height]);
        expect([d.frame.width, d.frame.height]).toEqual([
          Math.floor(im.width / c.shrink),
          Math.floor(im.height / c.shrink),
        ]);
      }
    });

    it("decodes the same pixels as OpenCV's libjpeg, at full and at reduced scale", async () => {
      for (const c of cases) {
        const { frame } = await decodeCase(c);
        const want = await readFile(c.pixels);
        expect(want.length).toBe(frame.data.length);
        let differ = 0;
        for (let i = 0; i < want.length; i += 3) {
          if (want[i] !== frame.data[i + 2] || want[i + 1] !== frame.data[i + 1] || want[i + 2] !== frame.data[i])
            differ++;
        }
        expect({ file: c.file, shrink: c.shrink, differ }).toEqual({ file: c.file, shrink: c.shrink, differ: 0 });
      }
    });

    it('gives the blob of cv2 doing the same decode within one 8-bit level', async () => {
      let differing = 0,
        total = 0;
      for (const c of cases) {
        const d = await decodeCase(c);
        const got = blobFromFrame(d.frame, c.params).tensor.data as Float32Array;
        const want = new Float32Array((await readFile(c.out)).buffer.slice(0));
        expect(got.length).toBe(want.length);
        const tol = c.params.scalefactor * 1.0001 + 1e-4;
        for (let i = 0; i < want.length; i++) {
          const diff = Math.abs(got[i]! - want[i]!);
          if (diff > tol)
            throw new Error(
              `${c.file} ${c.mode} 1/${c.shrink} ${JSON.stringify(c.params)} element ${i}: ${got[i]} vs ${want[i]}`,
            );
          if (diff > 1e-4) differing++;
        }
        total += want.length;
      }
      expect(differing / total).toBeLessThan(0.01);
      console.info(`[decode vs cv2] ${differing} of ${total} elements differ by one level`);
    });

    /**
     * What choosing `auto` changes for a model trained through cv2.imread at full size: Outpost's
     * auto blob against cv2.imread(path) + blobFromImage (the table of docs/performance.md,
     * printed here). Far outside one level on texture, which is why `exact` exists.
     */
    it('auto differs from a full decode by more than the tolerance (the table of docs/performance.md)', async () => {
      const rows: string[] = [];
      let texturedMax = 0;
      for (const c of cases) {
        if (c.mode !== 'auto' || c.shrink === 1 || c.params.crop) continue;
        const exact = cases.find(
          (e) => e.image === c.image && e.mode === 'exact' && !e.params.crop && e.params.size === c.params.size,
        )!;
        const got = blobFromFrame((await decodeCase(c)).frame, c.params).tensor.data as Float32Array;
        const want = new Float32Array((await readFile(exact.out)).buffer.slice(0));
        let max = 0,
          sum = 0,
          over = 0;
        for (let i = 0; i < want.length; i++) {
          const d = Math.abs(got[i]! - want[i]!);
          max = Math.max(max, d);
          sum += d;
          if (d > 1 + 1e-4) over++;
        }
        const im = IMAGES[c.image]!;
        if (im.kind === 'textured') texturedMax = Math.max(texturedMax, max);
        rows.push(
          `| ${im.kind} | ${im.width}x${im.height} ${im.chroma} q${im.quality} | ${c.params.size.join('x')} | 1/${c.shrink} | ${max.toFixed(0)} | ${(sum / want.length).toFixed(2)} | ${((100 * over) / want.length).toFixed(1)}% |`,
        );
      }
      console.info(`[auto vs cv2.imread full]\n${rows.join('\n')}`);
      expect(rows.length).toBeGreaterThanOrEqual(6);
      expect(texturedMax).toBeGreaterThan(10);
    });
  },
);
