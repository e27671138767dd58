import { OutpostError } from '../../protocol/errors/index.js';
import { loadSharp } from '../runtime/load-sharp.js';
import { readJpegHeader, readPngHeader } from '../runtime/decode-jpeg-header.js';

/**
 * A global budget of decoded bytes for requests in flight (docs/local-api.md, "Memory bound").
 * The per-model concurrency limit bounds how many requests run, not how big they are: four
 * 187 KB PNGs of 8000x8000 pixels decode to 192 MB each, and took the agent from 168 MB to
 * 1.7-3.7 GB RSS. Here every image request reserves its decoded size before it is decoded, and
 * every tensor request its body's size before the body is read, from one budget shared by all
 * models; a request that does not fit gets 503 API_MEMORY_BUSY with Retry-After at once (a
 * queue would hold the compressed bodies and let a burst pile up again), one that could never
 * fit gets 413 API_IMAGE_TOO_LARGE.
 *
 * The bound on RSS is then: idle RSS + maxBytesInFlight + what the decoder allocates beyond its
 * output (libvips's tiles; measured by `npm run bench -- agent-image-burst`).
 */
export class MemoryBudget {
  private used = 0;

  constructor(
    private max: number,
    private readonly retryAfterSeconds = 1,
  ) {}

  setMax(max: number): void {
    this.max = max;
  }

  /** Reserves `bytes` or throws; the returned function gives them back (idempotent). */
  reserve(bytes: number, what: string): () => void {
    if (bytes > this.max) {
      throw new OutpostError(
        'API_IMAGE_TOO_LARGE',
        `${what} needs ${bytes} decoded bytes, more than the whole in-flight budget of ${this.max} (api.maxBytesInFlight); send a smaller one`,
        { bytes, limit: this.max },
      );
    }
    if (this.used + bytes > this.max) {
      throw new OutpostError(
        'API_MEMORY_BUSY',
        `${what} needs ${bytes} decoded bytes and ${this.used} of ${this.max} are in use by requests in flight (api.maxBytesInFlight); retry after ${this.retryAfterSeconds} s`,
        { bytes, inUse: this.used, limit: this.max, retryAfterSeconds: this.retryAfterSeconds },
      );
    }
    this.used += bytes;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.used -= bytes;
    };
  }

  inUse(): number {
    return this.used;
  }
}

/**
 * What decoding `image` will hold at its peak, from its header alone (a JPEG's markers, or sharp's
 * metadata for other formats, which reads width, height and channels without decoding pixels): the decoded frame (up to 4 bytes a pixel before alpha is
 * removed) and the converted output frame beside it, plus the compressed bytes. An image whose
 * header cannot be read is left to the decoder, which refuses it with its own code.
 */
export async function decodedBytes(image: Uint8Array): Promise<number> {
  // A JPEG's frame header answers without sharp (about 0.4 ms through libvips' thread pool); the
  // decode mode reads the same header again (agent/runtime/decode.ts), a few dozen bytes. A JPEG
  // has at most 4 components, so the frame is at most 4 bytes a pixel.
  const jpeg = readJpegHeader(image);
  if (jpeg) return jpeg.width * jpeg.height * 4 * 2 + image.length;
  // A PNG's IHDR the same way (the native pre-processing never loads sharp for a PNG either);
  // the same estimate as sharp's metadata gives: at most 4 channels.
  const png = readPngHeader(image);
  if (png) return png.width * png.height * 4 * 2 + image.length;
  try {
    const sharp = await loadSharp();
    const m = await sharp(image, { limitInputPixels: false }).metadata();
    const pixels = (m.width ?? 0) * (m.height ?? 0);
    return pixels * Math.max(4, m.channels ?? 4) * 2 + image.length;
  } catch {
    return image.length;
  }
}
