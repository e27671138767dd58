import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SharedMemoryObject } from '../../agent/client/index.js';
import { FIXTURE_KINDS } from '../fixtures/onnx/models.js';
import { encodePng, toBgr, twoBlocksImage } from '../fixtures/images.js';
import { codeOfRejection } from '../helpers/error-code.js';
import { startAgent, type Harness } from './api-harness.js';

/**
 * Raw frames on /predict: the pixels of an image sent as RGB, BGR, RGBA, in the body or in a
 * shared-memory region, give exactly the answer of the same image sent as PNG (the PNG decodes
 * to the same pixels, so nothing may differ), for every purpose; bad frames get their codes.
 */
let h: Harness;
const objects: SharedMemoryObject[] = [];
beforeAll(async () => {
  h = await startAgent();
});
afterAll(async () => {
  await h?.close();
  for (const o of objects) o.destroy();
});

const img = twoBlocksImage();
const strip = (r: Record<string, unknown>) => ({ ...r, duration: undefined });

function rgba(data: Uint8Array): Uint8Array {
  const out = new Uint8Array((data.length / 3) * 4);
  for (let i = 0, j = 0; i < data.length; i += 3, j += 4) {
    out[j] = data[i]!;
    out[j + 1] = data[i + 1]!;
    out[j + 2] = data[i + 2]!;
    out[j + 3] = 77;
  }
  return out;
}

describe('raw frames give the answer of the same image as PNG', () => {
  for (const kind of FIXTURE_KINDS) {
    it(`${kind}: rgb, bgr and rgba bodies, and a frame in shared memory`, async () => {
      const id = `acme/${kind}`;
      const png = await h.client.predict(id, await encodePng(img));
      const { width, height } = img;
      const rgb = await h.client.predictFrame(id, { width, height, format: 'rgb', data: img.data });
      const bgr = await h.client.predictFrame(id, { width, height, format: 'bgr', data: toBgr(img).data });
      const withAlpha = await h.client.predictFrame(id, { width, height, format: 'rgba', data: rgba(img.data) });
      const o = SharedMemoryObject.create(`/outpost-frames-${process.pid}-${kind}`, 100 + img.data.length);
      objects.push(o);
      o.write(100, toBgr(img).data);
      await h.client.registerSharedMemory(`frame-${kind}`, o.key, img.data.length, 100);
      const viaShm = await h.client.predictFrame(id, {
        width,
        height,
        format: 'bgr',
        shm: { region: `frame-${kind}`, offset: 0 },
      });
      await h.client.unregisterSharedMemory(`frame-${kind}`);
      for (const got of [rgb, bgr, withAlpha, viaShm]) expect(strip(got)).toEqual(strip(png));
    });
  }

  it('headers instead of the query, and annotate on a raw frame', async () => {
    const a = await fetchLike('/v1/models/acme/classifier/predict', img.data, {
      'X-Outpost-Frame-Width': '96',
      'X-Outpost-Frame-Height': '72',
      'X-Outpost-Frame-Format': 'rgb',
    });
    expect(a.status).toBe(200);
    expect(strip(JSON.parse(a.body.toString()))).toEqual(
      strip(await h.client.predict('acme/classifier', await encodePng(img))),
    );
    const annotated = await h.client.predictFrame(
      'acme/ssd',
      { width: 96, height: 72, format: 'bgr', data: toBgr(img).data },
      { annotate: true, confidence: 0.3 },
    );
    const meta = await sharp(annotated).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 96, 72]);
    // Colors stay where they were: the BGR frame was swapped back for drawing.
    const { data } = await sharp(annotated).raw().toBuffer({ resolveWithObject: true });
    const at = (x: number, y: number) => Array.from(data.subarray((y * 96 + x) * 3, (y * 96 + x) * 3 + 3));
    expect(at(20, 20)).toEqual([255, 0, 0]);
  });
});

describe('bad frames are refused with their codes', () => {
  it('wrong sizes, formats and combinations', async () => {
    const frame = { width: 96, height: 72, format: 'rgb' as const };
    expect(
      await codeOfRejection(h.client.predictFrame('acme/classifier', { ...frame, data: img.data.subarray(1) })),
    ).toBe('RUNTIME_IMAGE_INVALID');
    expect(
      await codeOfRejection(
        h.client.predictFrame('acme/classifier', { ...frame, format: 'yuv' as never, data: img.data }),
      ),
    ).toBe('BAD_REQUEST');
    expect(
      await codeOfRejection(h.client.predictFrame('acme/classifier', { ...frame, width: 0, data: img.data })),
    ).toBe('BAD_REQUEST');
    expect(
      await codeOfRejection(h.client.predictFrame('acme/classifier', { ...frame, shm: { region: 'absent' } })),
    ).toBe('API_SHM_REGION_UNKNOWN');
    const o = SharedMemoryObject.create(`/outpost-frames-${process.pid}-small`, 1000);
    objects.push(o);
    await h.client.registerSharedMemory('small', o.key, 1000);
    expect(
      await codeOfRejection(h.client.predictFrame('acme/classifier', { ...frame, shm: { region: 'small' } })),
    ).toBe('API_SHM_OUT_OF_RANGE');
    await h.client.unregisterSharedMemory('small');
    const partial = await fetchLike('/v1/models/acme/classifier/predict?width=96', img.data, {});
    expect([partial.status, JSON.parse(partial.body.toString()).code]).toEqual([400, 'BAD_REQUEST']);
    const typed = await fetchLike('/v1/models/acme/classifier/predict?width=96&height=72&format=rgb', img.data, {
      'Content-Type': 'image/png',
    });
    expect([typed.status, JSON.parse(typed.body.toString()).code]).toEqual([415, 'API_UNSUPPORTED_MEDIA_TYPE']);
  });
});

/** A plain POST over the socket with chosen headers (the client always sends the query form). */
async function fetchLike(
  path: string,
  body: Uint8Array,
  headers: Record<string, string>,
): Promise<{ status: number; body: Buffer }> {
  const { request } = await import('node:http');
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath: h.socket, method: 'POST', path, headers: { 'Content-Length': String(body.length), ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
