import { OutpostError, toOutpostError } from '../../../protocol/errors/index.js';
import { decodedBytes } from '../admission.js';
import { annotate } from '../annotate.js';
import type { BodyLease } from '../body.js';
import { parseFrameSpec, readFrame } from '../frames.js';
import type { RawFrame } from '../../runtime/preprocess.js';
import type { Handler } from '../context.js';
import { mediaType, readBody, sendBytes, sendJson } from '../http.js';
import { resolveVersion } from '../names.js';
import { limitFor } from '../limiter.js';
import type { PredictOptions } from '../types.js';

const IMAGE_TYPES = new Set(['image/jpeg', 'image/png', 'application/octet-stream']);

/** JPEG starts FF D8 FF, PNG with its 8-byte signature; anything else is refused before decoding. */
export function imageKind(b: Uint8Array): 'jpeg' | 'png' | undefined {
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  const png = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (b.length >= 8 && png.every((v, i) => b[i] === v)) return 'png';
  return undefined;
}

function numberParam(q: URLSearchParams, key: string, min: number, max: number, integer: boolean): number | undefined {
  const raw = q.get(key);
  if (raw === null) return undefined;
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    throw new OutpostError(
      'BAD_REQUEST',
      `query parameter ${key}=${JSON.stringify(raw.slice(0, 40))} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}`,
      { key, value: raw.slice(0, 40) },
    );
  }
  return v;
}

function flagParam(q: URLSearchParams, key: string): boolean {
  const raw = q.get(key);
  if (raw === null || raw === '0' || raw === 'false') return false;
  if (raw === '' || raw === '1' || raw === 'true') return true;
  throw new OutpostError('BAD_REQUEST', `query parameter ${key}=${JSON.stringify(raw.slice(0, 40))} must be 1 or 0`, {
    key,
    value: raw.slice(0, 40),
  });
}

/**
 * POST /v1/models/{owner}/{name}/predict[?annotate=1&confidence=0.5&top_k=5&version=3]: one image
 * in, typed results out (or, with annotate, the image with the results drawn on it as PNG). The
 * image is a JPEG/PNG body, or a raw frame in the body or in shared memory (agent/api/frames.ts).
 */
export const predict: Handler = async (req, res, { params, query }, ctx) => {
  const entry = ctx.runtime.lookup(`${params.owner}/${params.name}`);
  const version = resolveVersion(entry, query.get('version') ?? undefined);
  const opts: PredictOptions = {};
  const confidence = numberParam(query, 'confidence', 0, 1, false);
  const topK = numberParam(query, 'top_k', 1, 10_000, true);
  if (confidence !== undefined) opts.confidence = confidence;
  if (topK !== undefined) opts.topK = topK;
  const wantImage = flagParam(query, 'annotate');
  const type = mediaType(req);
  const spec = parseFrameSpec(req, query);
  if (spec && type !== undefined && type !== 'application/octet-stream') {
    throw new OutpostError(
      'API_UNSUPPORTED_MEDIA_TYPE',
      `a raw frame is sent as application/octet-stream (or without Content-Type), not ${type.slice(0, 80)}`,
      { contentType: type.slice(0, 80) },
    );
  }
  if (type !== undefined && !IMAGE_TYPES.has(type)) {
    throw new OutpostError(
      'API_UNSUPPORTED_MEDIA_TYPE',
      `predict takes image/jpeg, image/png or application/octet-stream, not ${type.slice(0, 80)}`,
      { contentType: type.slice(0, 80) },
    );
  }
  const model = ctx.runtime.describe(entry.id, version);
  if (!model) {
    throw new OutpostError(
      'API_MODEL_NOT_READY',
      `model ${entry.id} has no version ready to serve; its state is ${entry.state}`,
      { model: entry.id, state: entry.state },
    );
  }
  const release = ctx.limiter.acquire(entry.id, limitFor(model));
  let lease: BodyLease | undefined;
  let releaseMemory = (): void => undefined;
  try {
    let image: Uint8Array | RawFrame;
    if (spec) {
      const raw = await readFrame(req, res, spec, ctx);
      lease = raw.lease;
      image = raw.frame;
    } else image = await readBody(req, ctx.limits.maxBodyBytes);
    if (image instanceof Uint8Array && !imageKind(image)) {
      throw new OutpostError(
        'API_NOT_AN_IMAGE',
        `the body (${image.length} bytes) is not a JPEG or PNG image; send the image file's bytes`,
        { bytes: image.length },
      );
    }
    // Reserved from the header alone, before a pixel is decoded (agent/api/admission.ts); a raw
    // frame is already its decoded size.
    const bytes = image instanceof Uint8Array ? await decodedBytes(image) : image.data.byteLength;
    releaseMemory = ctx.memory.reserve(bytes, 'the image');
    ctx.metrics.modelRequests.inc({ model: entry.id, route: 'predict' });
    const started = process.hrtime.bigint();
    let out: Awaited<ReturnType<typeof ctx.runtime.predict>>;
    try {
      out = await ctx.runtime.predict(entry.id, version, image, opts);
    } catch (err) {
      const e = toOutpostError(err);
      ctx.metrics.modelErrors.inc({ model: entry.id, code: e.code });
      throw e;
    }
    ctx.metrics.inferenceSeconds.observe({ model: entry.id }, Number(process.hrtime.bigint() - started) / 1e9);
    if (wantImage) {
      const png = await annotate(image, out.result);
      sendBytes(res, 200, png, { 'Content-Type': 'image/png', 'X-Outpost-Model-Version': String(out.version) });
    } else {
      sendJson(res, 200, { model: entry.id, version: out.version, ...out.result });
    }
  } finally {
    lease?.release();
    releaseMemory();
    release();
  }
};
