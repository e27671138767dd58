import { describe, expect, it } from 'vitest';
import { nativeImage } from '../../agent/runtime/native-preprocess.js';
import { prepareInput } from '../../agent/runtime/prepare.js';
import type { RawFrame } from '../../agent/runtime/preprocess.js';
import { cameraLikeImage, jpegOf } from '../fixtures/cv2/jpegs.js';
import { skipForPackage } from '../helpers/requires.js';
import { rssGrowthMb } from '../helpers/rss-growth.js';

/**
 * Leak check of the native pre-processing addon (addons/image): 1,200 decodes + blobs of a JPEG
 * (stretch and letterbox) and 1,200 of raw frames. Each call holds references to the
 * caller's input and output arrays until it settles, reuses thread-local Mats, and takes its
 * output from a pool; a reference or a Mat that leaked would cost the input (about 50 KB) or the
 * decoded frame (230 KB) per call, i.e. 60-270 MB here. RSS is sampled after a warm-up
 * (allocator arenas, the pool threads' Mats) and at the end, and must stay within 24 MB.
 */
const addon = nativeImage({});
const ITERATIONS = 1200;
const WARMUP = 300;
const BOUND_MB = 24;

describe.skipIf(skipForPackage(addon.ok ? null : addon.reason))('image addon leak check', () => {
  it(`${ITERATIONS} native decodes and frames keep RSS flat`, async () => {
    const img = cameraLikeImage(640, 480, 5);
    const jpeg = await jpegOf(img, 90, '4:2:0');
    const frame: RawFrame = { width: 640, height: 480, channels: 3, format: 'rgb', data: img.data };
    const params = { size: [300, 220] as [number, number], mean: [104, 117, 123] as [number, number, number] };
    const opts = { mode: 'auto' as const, params: { ...params, scalefactor: 1, swaprb: false, crop: false } };
    const grown = await rssGrowthMb(ITERATIONS, WARMUP, async (i) => {
      // Copies, so every call has its own input array to hold and let go.
      const a = await prepareInput(Uint8Array.from(jpeg), { ...opts, letterbox: i % 2 === 0 });
      const b = await prepareInput({ ...frame, data: Uint8Array.from(frame.data) }, { ...opts, letterbox: false });
      expect([a.path, b.path]).toEqual(['native', 'native']);
      a.release();
      if (i % 3 === 0) b.release();
    });
    console.info(`[image addon leak] RSS grew ${grown.toFixed(1)} MB over ${ITERATIONS - WARMUP} iterations`);
    expect(grown).toBeLessThan(BOUND_MB);
  }, 120_000);
});
