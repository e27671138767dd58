import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutpostError } from '../../protocol/errors/index.js';
import { rawConnect } from '../helpers/raw-http.js';
import { startAgent, type Harness } from './api-harness.js';

/**
 * Issue 11 D6 against the real agent API and runtime: decoded image and tensor bytes in flight
 * are bounded by one budget for all models. A request is made to hold a reservation
 * deterministically (an infer whose declared body never arrives reserves its tensor bytes up
 * front), so the test needs no timing. Before the fix every request below was decoded and
 * answered 200, however many or large.
 */
const BUDGET = 64 * 1024 * 1024;
let h: Harness;

const png = (width: number, height: number): Promise<Buffer> =>
  sharp({ create: { width, height, channels: 3, background: { r: 200, g: 30, b: 30 } } })
    .png()
    .toBuffer();

beforeAll(async () => {
  h = await startAgent({
    kinds: ['classifier', 'ssd'],
    limits: { maxBytesInFlight: BUDGET, maxConcurrentPerModel: 8 },
  });
});
afterAll(async () => {
  await h?.close();
});

describe('D6: a global budget of decoded bytes in flight', () => {
  it('refuses an image whose decoded size is larger than the whole budget with 413, before decoding it', async () => {
    // 4000 x 4000: a 50 KB PNG that decodes to 48 MB of RGB (reserved as 128 MB, see admission.ts).
    const big = await png(4000, 4000);
    expect(big.length).toBeLessThan(1024 * 1024);
    await expect(h.client.predict('acme/classifier', big)).rejects.toSatisfy(
      (e: unknown) => e instanceof OutpostError && e.code === 'API_IMAGE_TOO_LARGE',
    );
  });

  it('answers 503 API_MEMORY_BUSY with Retry-After while another model holds the budget, and serves once it is free', async () => {
    const image = await png(1500, 1500); // reserves 18 MB
    expect((await h.client.predict('acme/ssd', image)).model).toBe('acme/ssd');

    // An infer on the other model declares 24 MiB of tensors (48 MiB reserved) and sends nothing.
    const holder = await rawConnect(h.socket);
    holder.write(
      `POST /v2/models/acme%2Fclassifier/infer HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: ${24 * 1024 * 1024}\r\n\r\n{`,
    );
    await new Promise((r) => setTimeout(r, 100));

    const c = await rawConnect(h.socket);
    c.write(
      `POST /v1/models/acme/ssd/predict HTTP/1.1\r\nContent-Type: image/png\r\nContent-Length: ${image.length}\r\n\r\n`,
    );
    c.write(image);
    const a = await c.answer();
    expect(a.status).toBe(503);
    expect(a.code).toBe('API_MEMORY_BUSY');
    expect(a.headers['retry-after']).toBe('1');
    c.close();

    holder.close();
    await new Promise((r) => setTimeout(r, 100));
    expect((await h.client.predict('acme/ssd', image)).model).toBe('acme/ssd');
  });

  it('answers a burst of images only with results or 503 API_MEMORY_BUSY, never another failure', async () => {
    const image = await png(1500, 1500); // 18 MB each: three fit in 64 MiB, four do not
    const answers = await Promise.allSettled(Array.from({ length: 8 }, () => h.client.predict('acme/ssd', image)));
    const codes = answers.map((a) => (a.status === 'fulfilled' ? 'ok' : (a.reason as OutpostError).code));
    expect(codes.filter((c) => c !== 'ok' && c !== 'API_MEMORY_BUSY')).toEqual([]);
    expect(codes).toContain('ok');
  });
});
