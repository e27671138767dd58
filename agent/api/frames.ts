import type { IncomingMessage, ServerResponse } from 'node:http';
import { OutpostError } from '../../protocol/errors/index.js';
import { parseFrame, type RawFrame } from '../runtime/preprocess.js';
import { type BodyLease, lend, readAlignedBody } from './body.js';
import type { ApiContext } from './context.js';
import { header } from './http.js';

/**
 * Raw frames for /predict: an app that holds a camera frame sends its pixels as they are, in the
 * body or in a registered shared-memory region, and pays no encode or decode.
 *
 *   POST /v1/models/{owner}/{name}/predict?width=1280&height=720&format=bgr      (body: pixels)
 *   POST ...?width=1280&height=720&format=rgb&shm_region=cam0&shm_offset=0       (no body)
 *
 * The same fields may come as headers (X-Outpost-Frame-Width, -Height, -Format,
 * X-Outpost-Shm-Region, -Offset), for clients that keep one URL. Formats: rgb, bgr (3 bytes per
 * pixel), rgba, bgra (alpha ignored, as cv2.imread's IMREAD_COLOR does); rows are packed, no
 * stride. The pixels are validated by the runtime's one frame parser (parseFrame).
 */
export interface FrameSpec {
  width: number;
  height: number;
  format: 'rgb' | 'bgr';
  channels: 3 | 4;
  shm?: { region: string; offset: number };
}

const FORMATS: Record<string, { format: 'rgb' | 'bgr'; channels: 3 | 4 }> = {
  rgb: { format: 'rgb', channels: 3 },
  bgr: { format: 'bgr', channels: 3 },
  rgba: { format: 'rgb', channels: 4 },
  bgra: { format: 'bgr', channels: 4 },
};

function field(req: IncomingMessage, query: URLSearchParams, q: string, h: string): string | undefined {
  return query.get(q) ?? header(req, h);
}

function integer(raw: string, key: string, min: number, max: number): number {
  const v = Number(raw);
  if (!/^\d{1,12}$/.test(raw.trim()) || v < min || v > max)
    throw new OutpostError(
      'BAD_REQUEST',
      `${key}=${JSON.stringify(raw.slice(0, 40))} must be an integer from ${min} to ${max}`,
      {
        key,
        value: raw.slice(0, 40),
      },
    );
  return v;
}

/** The raw-frame description of a predict request, or undefined for an encoded image. */
export function parseFrameSpec(req: IncomingMessage, query: URLSearchParams): FrameSpec | undefined {
  const fmt = field(req, query, 'format', 'x-outpost-frame-format');
  const w = field(req, query, 'width', 'x-outpost-frame-width');
  const hgt = field(req, query, 'height', 'x-outpost-frame-height');
  const region = field(req, query, 'shm_region', 'x-outpost-shm-region');
  const offset = field(req, query, 'shm_offset', 'x-outpost-shm-offset');
  if (fmt === undefined && w === undefined && hgt === undefined && region === undefined && offset === undefined)
    return undefined;
  if (fmt === undefined || w === undefined || hgt === undefined)
    throw new OutpostError('BAD_REQUEST', 'a raw frame needs width, height and format (rgb, bgr, rgba or bgra)', {
      width: w,
      height: hgt,
      format: fmt,
    });
  const f = FORMATS[fmt.trim().toLowerCase()];
  if (!f)
    throw new OutpostError('BAD_REQUEST', `format=${JSON.stringify(fmt.slice(0, 20))} must be rgb, bgr, rgba or bgra`, {
      key: 'format',
    });
  const spec: FrameSpec = {
    width: integer(w, 'width', 1, 65_535),
    height: integer(hgt, 'height', 1, 65_535),
    ...f,
  };
  if (region !== undefined)
    spec.shm = { region, offset: offset === undefined ? 0 : integer(offset, 'shm_offset', 0, 2 ** 52) };
  else if (offset !== undefined)
    throw new OutpostError('BAD_REQUEST', 'shm_offset needs shm_region', { key: 'shm_offset' });
  return spec;
}

/**
 * The frame's pixels: a view of the request's pooled body, or read once from the region into a
 * pooled buffer. The lease goes back to the pool after the answer (see agent/api/body.ts).
 */
export async function readFrame(
  req: IncomingMessage,
  res: ServerResponse,
  spec: FrameSpec,
  ctx: ApiContext,
): Promise<{ frame: RawFrame; lease: BodyLease }> {
  const size = spec.width * spec.height * spec.channels;
  if (size > ctx.limits.maxBodyBytes)
    throw new OutpostError(
      'API_BODY_TOO_LARGE',
      `a ${spec.width}x${spec.height} ${spec.channels}-channel frame is ${size} bytes, more than api.maxBodyBytes (${ctx.limits.maxBodyBytes})`,
      { limit: ctx.limits.maxBodyBytes },
    );
  let lease: BodyLease;
  if (spec.shm) {
    const declared = Number(header(req, 'content-length') ?? 0);
    if (declared > 0 || header(req, 'transfer-encoding') !== undefined)
      throw new OutpostError(
        'BAD_REQUEST',
        'a frame in shared memory takes no body; send the pixels in the region only',
      );
    const ref = { region: spec.shm.region, offset: spec.shm.offset, byteSize: size };
    ctx.shm.check(ref, 'frame');
    lease = lend(ctx.pool, res, size);
    try {
      ctx.shm.read(ref, lease.bytes, 'frame');
    } catch (err) {
      lease.release();
      throw err;
    }
  } else {
    lease = await readAlignedBody(req, res, ctx.limits.maxBodyBytes, ctx.pool);
  }
  try {
    const frame = parseFrame({
      width: spec.width,
      height: spec.height,
      channels: spec.channels,
      format: spec.format,
      data: lease.bytes,
    });
    return { frame, lease };
  } catch (err) {
    lease.release();
    throw err;
  }
}
