import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeImage } from '../../agent/runtime/native-preprocess.js';
import { FIXTURE_KINDS } from '../fixtures/onnx/models.js';
import { cameraLikeImage, jpegOf } from '../fixtures/cv2/jpegs.js';
import { encodePng } from '../fixtures/images.js';
import { skipForPackage } from '../helpers/requires.js';
import { startAgent, type Harness } from './api-harness.js';

/**
 * /predict over the real socket through the native pre-processing (addons/image): a 1280x720
 * JPEG (1/2 decode), an EXIF-rotated JPEG, a PNG and a raw frame, for every purpose, each
 * counted on the agent's own /metrics as made natively (outpost_preprocess_images_total), and each
 * answered exactly as the sharp fallback answers the same request (OUTPOST_PREPROCESS=sharp, set
 * for the second pass: the switch is read per request).
 */
const addon = nativeImage({});
let h: Harness;
const strip = (r: Record<string, unknown>) => ({ ...r, duration: undefined });
const counts = async () => {
  const page = await h.client.metrics();
  const n = (path: string) =>
    Number(new RegExp(`^outpost_preprocess_images_total\\{path="${path}"\\} (\\d+)$`, 'm').exec(page)?.[1] ?? NaN);
  return { native: n('native'), sharp: n('sharp') };
};

describe.skipIf(skipForPackage(addon.ok ? null : addon.reason))('/predict through the native pre-processing', () => {
  beforeAll(async () => {
    h = await startAgent();
  });
  afterAll(async () => {
    delete process.env.OUTPOST_PREPROCESS;
    await h?.close();
  });

  it('answers JPEG, EXIF JPEG, PNG and raw-frame requests natively, as the sharp fallback does', async () => {
    const img = cameraLikeImage(1280, 720, 21);
    const raw = sharp(Buffer.from(img.data), { raw: { width: 1280, height: 720, channels: 3 } });
    const jpeg = await jpegOf(img, 90, '4:2:0');
    const turned = await raw.clone().withMetadata({ orientation: 6 }).jpeg({ quality: 90 }).toBuffer();
    const png = await encodePng(cameraLikeImage(333, 250, 22));
    const frame = { width: 1280, height: 720, format: 'rgb' as const, data: img.data };
    for (const kind of FIXTURE_KINDS) {
      const id = `acme/${kind}`;
      const ask = () =>
        Promise.all([
          h.client.predict(id, jpeg),
          h.client.predict(id, turned),
          h.client.predict(id, png),
          h.client.predictFrame(id, frame),
        ]);
      delete process.env.OUTPOST_PREPROCESS;
      const before = await counts();
      const native = await ask();
      const between = await counts();
      expect([between.native - before.native, between.sharp - before.sharp]).toEqual([4, 0]);
      process.env.OUTPOST_PREPROCESS = 'sharp';
      const fallback = await ask();
      const after = await counts();
      expect([after.native - between.native, after.sharp - between.sharp]).toEqual([0, 4]);
      expect({ kind, answers: native.map(strip) }).toEqual({ kind, answers: fallback.map(strip) });
    }
  });
});
