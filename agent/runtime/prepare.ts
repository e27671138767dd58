import type { DecodeMode } from '../../protocol/manifest-types.js';
import { type Logger, moduleLogger, silentLogger } from '../../protocol/log.js';
import { OutpostError } from '../../protocol/errors/index.js';
import type { Tensor } from './backend.js';
import { decodeForNetwork, decodeShrink, imageGeometry } from './decode.js';
import { letterboxFromFrame, letterboxGeometry } from './letterbox.js';
import { findAddon } from './backends/native-loader.js';
import { encodedPlan, nativeBlob, nativeImage } from './native-preprocess.js';
import {
  type BlobParams,
  blobFromFrame,
  blobGeometry,
  type Geometry,
  parseFrame,
  type RawFrame,
} from './preprocess.js';

/**
 * /predict's whole pre-processing: JPEG/PNG bytes or a raw frame -> the model's blob and the
 * geometry that maps network coordinates back to the caller's pixels.
 *
 * Two paths, the same blobs (test/integration/runtime-native-preprocess.test.ts):
 *   - native (addons/image, when built): OpenCV's decode at the scale the `decode` mode picks,
 *     cv::resize and the blob, in one call off the JS thread, into a pooled output;
 *   - sharp: the decode of agent/runtime/decode.ts and the TypeScript resize of preprocess.ts /
 *     letterbox.ts. Used where the addon is not built (a device without OpenCV), with
 *     OUTPOST_PREPROCESS=sharp, and for any image the native path does not take (a header it
 *     cannot read, a truncated file, one beyond the pixel limit, one OpenCV refuses): sharp then
 *     decides, with today's messages.
 */
export interface PrepareOptions {
  mode: DecodeMode;
  params: BlobParams;
  /** The ultralytics letterbox instead of blobFromImage's stretch or crop. */
  letterbox: boolean;
  maxPixels?: number;
  log?: Logger;
  /** false forces the sharp path (tests, the bench); default: native when the addon loads. */
  native?: boolean;
}

export interface Prepared {
  tensor: Tensor;
  geometry: Geometry;
  path: 'native' | 'sharp';
  /** Gives a native output back to its pool once the backend has read it (a no-op for sharp). */
  release(): void;
}

let announced = false;
const made = { native: 0, sharp: 0 };

/** Blobs this process made on each path (`outpost_preprocess_images_total` on /metrics). */
export function preprocessedImages(): Readonly<typeof made> {
  return made;
}

export async function prepareInput(image: Uint8Array | RawFrame, o: PrepareOptions): Promise<Prepared> {
  const binding = o.native === false ? null : nativeImage();
  if (!announced && binding) {
    announced = true;
    const log = moduleLogger(o.log ?? silentLogger, 'runtime.prepare');
    if (binding.ok)
      log.info({ addon: binding.path, opencv: binding.binding.opencv }, 'pre-processing natively (OpenCV)');
    // A built addon that does not load (a library missing since the build) is worth a warning.
    else if (findAddon('outpost_image'))
      log.warn({ reason: binding.reason }, 'pre-processing with sharp and TypeScript');
    else log.info({ reason: binding.reason }, 'pre-processing with sharp and TypeScript');
  }
  if (binding?.ok) {
    const geometryOf = o.letterbox ? letterboxGeometry : blobGeometry;
    if (!(image instanceof Uint8Array)) {
      const frame = parseFrame(image);
      const r = await nativeBlob(binding.binding, { source: { frame }, params: o.params, letterbox: o.letterbox });
      const geometry = geometryOf(r.frameWidth, r.frameHeight, o.params);
      made.native++;
      return { tensor: r.tensor, geometry, path: 'native', release: r.release };
    }
    const plan = encodedPlan(image, o.maxPixels);
    if (plan) {
      // Orientations 5-8 turn the image by 90 degrees: the displayed size is the stored one swapped.
      const turned = plan.orientation >= 5;
      const width = turned ? plan.height : plan.width;
      const height = turned ? plan.width : plan.height;
      const shrink = plan.kind === 'jpeg' ? decodeShrink(o.mode, width, height, o.params.size) : 1;
      try {
        const r = await nativeBlob(binding.binding, {
          source: { bytes: image, plan, shrink },
          params: o.params,
          letterbox: o.letterbox,
          ...(o.maxPixels ? { maxPixels: o.maxPixels } : {}),
        });
        const g = geometryOf(r.frameWidth, r.frameHeight, o.params);
        const geometry = shrink === 1 ? g : imageGeometry(g, { shrink, width, height });
        made.native++;
        return { tensor: r.tensor, geometry, path: 'native', release: r.release };
      } catch (err) {
        // OpenCV refused the image: sharp judges it, with the message a caller gets today.
        if (!(err instanceof OutpostError) || err.code !== 'RUNTIME_IMAGE_INVALID') throw err;
      }
    }
  }
  return sharpPath(image, o);
}

async function sharpPath(image: Uint8Array | RawFrame, o: PrepareOptions): Promise<Prepared> {
  const decoded =
    image instanceof Uint8Array
      ? await decodeForNetwork(image, {
          mode: o.mode,
          size: o.params.size,
          ...(o.maxPixels ? { maxPixels: o.maxPixels } : {}),
          ...(o.log ? { log: o.log } : {}),
        })
      : undefined;
  const frame = decoded ? decoded.frame : parseFrame(image);
  // Stretch/crop is blobFromImage; letterbox resizes inside the border.
  const blob = o.letterbox ? letterboxFromFrame(frame, o.params) : blobFromFrame(frame, o.params);
  const geometry = decoded ? imageGeometry(blob.geometry, decoded) : blob.geometry;
  made.sharp++;
  return { tensor: blob.tensor, geometry, path: 'sharp', release: () => undefined };
}
