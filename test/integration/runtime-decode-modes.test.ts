import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ObjectDetectionResult } from '../../agent/runtime/postprocess/index.js';
import { Runtime } from '../../agent/runtime/runtime.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { encodeJpeg, type Rgb, rectsImage } from '../fixtures/images.js';
import { writeModelFolder } from '../fixtures/model-folder.js';

/**
 * The `decode` mode of a model through the real runtime (onnxruntime-node, the generated SSD,
 * real JPEG bytes): a JPEG four times the network input is decoded at 1/4 in `auto` and in full
 * in `exact`, and both report boxes in the caller's image pixels, also for an EXIF-rotated file.
 */
let root: string;
const rt = new Runtime();
const RED: Rgb = [250, 0, 0],
  GREEN: Rgb = [0, 240, 0],
  BLACK: Rgb = [0, 0, 0];
// The runtime-purposes scene (SSD 64x48 network) at four times its size: 320x240.
const WANT = {
  red: [32, 40, 160, 120],
  green: [200, 20, 280, 100],
};
const scene = rectsImage(320, 240, BLACK, [
  { box: WANT.red as [number, number, number, number], color: RED },
  { box: WANT.green as [number, number, number, number], color: GREEN },
]);

async function install(name: string, params: Record<string, unknown>): Promise<string> {
  const id = `test/${name}`;
  const dir = join(root, name, '1');
  await writeModelFolder(dir, 'ssd', { id, params });
  await rt.activate(id, 1, dir);
  return id;
}

function expectBoxes(r: ObjectDetectionResult): void {
  expect(r.image).toEqual({ width: 320, height: 240 });
  expect(r.predictions.map((p) => p.label).sort()).toEqual(['green', 'red']);
  // One network pixel is 5 image pixels; bilinear edges move a box edge by at most two of them.
  for (const [label, want] of Object.entries(WANT)) {
    const b = r.predictions.find((p) => p.label === label)!.box;
    const got = [b.start_x, b.start_y, b.end_x, b.end_y];
    for (let i = 0; i < 4; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(10);
  }
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'outpost-decode-modes-'));
});
afterAll(async () => {
  await rt.close();
  await rm(root, { recursive: true, force: true });
});

describe('runtime: the decode mode of a model', () => {
  it('auto (the default) and exact both map boxes to the image pixels', async () => {
    const auto = await install('ssd-auto', {});
    const exact = await install('ssd-exact', { decode: 'exact' });
    const jpeg = await encodeJpeg(scene, 95);
    const a = (await rt.predict(auto, jpeg)) as ObjectDetectionResult;
    const e = (await rt.predict(exact, jpeg)) as ObjectDetectionResult;
    expectBoxes(a);
    expectBoxes(e);
    // The network saw other pixels (the 1/4 decode against the full one resized): the same
    // model gives other scores, so the mode did reach the decode.
    const score = (r: ObjectDetectionResult) => r.predictions.map((p) => [p.label, p.confidence]);
    expect(score(a)).not.toEqual(score(e));
  });

  it('applies EXIF orientation before choosing the scale (a file stored turned by 90 degrees)', async () => {
    const auto = await install('ssd-auto-exif', { decode: 'auto' });
    // Stored 240x320 with orientation 6 (rotate 90 degrees clockwise to display): displayed 320x240.
    const turned = await sharp(Buffer.from(scene.data), { raw: { width: 320, height: 240, channels: 3 } })
      .rotate(270)
      .withMetadata({ orientation: 6 })
      .jpeg({ quality: 95 })
      .toBuffer();
    expect(await sharp(turned).metadata()).toMatchObject({ width: 240, height: 320, orientation: 6 });
    expectBoxes((await rt.predict(auto, turned)) as ObjectDetectionResult);
  });

  it('refuses a model whose decode mode is not auto or exact, naming the key', async () => {
    const err = await install('ssd-bad', { decode: 'fast' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutpostError);
    expect(err).toMatchObject({ code: 'MODEL_FIELD_INVALID', details: { key: 'decode', value: 'fast' } });
    expect((err as Error).message).toContain('one of: auto, exact');
  });
});
