import sharp from 'sharp';
import { describe, expect, it, vi } from 'vitest';
import { type Decoded, decodeForNetwork, decodeShrink, imageGeometry } from '../../agent/runtime/decode.js';
import { readJpegHeader } from '../../agent/runtime/decode-jpeg-header.js';
import { letterboxFromFrame } from '../../agent/runtime/letterbox.js';
import { blobFromFrame } from '../../agent/runtime/preprocess.js';
import { toImageX as mapX, toImageY as mapY } from '../../agent/runtime/postprocess/common.js';
import { encodePng, noiseImage } from '../fixtures/images.js';
import { cameraLikeImage, jpegOf } from '../fixtures/cv2/jpegs.js';

describe('decodeShrink: the scale auto picks', () => {
  it('is the largest 1/k that keeps the decode at least the network size in both dimensions', () => {
    const cases: [number, number, [number, number], number][] = [
      [1280, 720, [300, 300], 2], // 720/4 = 180 < 300
      [1920, 1080, [300, 300], 2], // 1080/4 = 270 < 300
      [1920, 1080, [224, 224], 4],
      [1920, 1080, [640, 640], 1], // not twice the input
      [3840, 2160, [300, 300], 4], // 2160/8 = 270 < 300
      [4032, 3024, [300, 300], 8],
      [640, 480, [300, 300], 1],
      [599, 1000, [300, 300], 1], // 599 < 2 x 300
      [600, 600, [300, 300], 2], // exactly twice
      [1281, 719, [300, 300], 2], // floor(719 / 2) = 359
      [1283, 725, [150, 90], 8], // floor(725 / 8) = 90
      [300, 300, [300, 300], 1],
    ];
    for (const [w, h, size, k] of cases)
      expect({ w, h, size, k: decodeShrink('auto', w, h, size) }).toEqual({ w, h, size, k });
  });

  it('is always 1 in exact mode', () => {
    expect(decodeShrink('exact', 4032, 3024, [300, 300])).toBe(1);
  });
});

describe('decodeForNetwork', () => {
  it('decodes a large JPEG at 1/k in auto and in full in exact; a PNG always in full', async () => {
    const jpeg = await jpegOf(cameraLikeImage(1280, 720, 5), 90, '4:2:0');
    const auto = await decodeForNetwork(jpeg, { mode: 'auto', size: [300, 300] });
    expect([auto.shrink, auto.frame.width, auto.frame.height, auto.width, auto.height]).toEqual([
      2, 640, 360, 1280, 720,
    ]);
    const exact = await decodeForNetwork(jpeg, { mode: 'exact', size: [300, 300] });
    expect([exact.shrink, exact.frame.width, exact.frame.height]).toEqual([1, 1280, 720]);
    const png = await decodeForNetwork(await encodePng(noiseImage(1280, 720, 2)), { mode: 'auto', size: [300, 300] });
    expect([png.shrink, png.frame.width]).toEqual([1, 1280]);
  });

  it('refuses what the full decode refuses, with its code', async () => {
    const jpeg = await jpegOf(cameraLikeImage(1280, 720, 5), 90, '4:2:0');
    await expect(decodeForNetwork(jpeg.subarray(0, 600), { mode: 'auto', size: [300, 300] })).rejects.toMatchObject({
      code: 'RUNTIME_IMAGE_INVALID',
    });
    await expect(decodeForNetwork(jpeg, { mode: 'auto', size: [300, 300], maxPixels: 1000 })).rejects.toMatchObject({
      code: 'RUNTIME_IMAGE_INVALID',
    });
  });
});

describe('imageGeometry: results of a 1/k decode in the image pixels', () => {
  const p = { mean: [0, 0, 0] as [number, number, number], scalefactor: 1, swaprb: false };
  const frame = (w: number, h: number) => ({ ...noiseImage(w, h, 1), channels: 3 as const });
  const corners = (d: Decoded, crop: boolean) => {
    const g = imageGeometry(blobFromFrame(d.frame, { ...p, size: [300, 300], crop }).geometry, d);
    return [mapX(g, 0), mapY(g, 0), mapX(g, 300), mapY(g, 300), g.imageWidth, g.imageHeight];
  };

  it('maps the network corners to the same image points as a full decode', () => {
    for (const crop of [false, true]) {
      const full = corners({ frame: frame(1280, 720), shrink: 1, width: 1280, height: 720 }, crop);
      const half = corners({ frame: frame(640, 360), shrink: 2, width: 1280, height: 720 }, crop);
      for (let i = 0; i < full.length; i++) expect(half[i]).toBeCloseTo(full[i]!, 6);
    }
  });

  it('maps letterboxed network corners to the same image points as a full decode', () => {
    const lb = (d: Decoded) => {
      const g = imageGeometry(letterboxFromFrame(d.frame, { ...p, size: [320, 320], crop: false }).geometry, d);
      return [mapX(g, 0), mapY(g, 0), mapX(g, 320), mapY(g, 320), g.offsetX, g.offsetY];
    };
    const full = lb({ frame: frame(1280, 720), shrink: 1, width: 1280, height: 720 });
    const half = lb({ frame: frame(640, 360), shrink: 2, width: 1280, height: 720 });
    for (let i = 0; i < full.length; i++) expect(half[i]).toBeCloseTo(full[i]!, 6);
  });

  it('keeps the image size when libvips drops a partial last block (odd sizes)', () => {
    const g = corners({ frame: frame(640, 359), shrink: 2, width: 1281, height: 719 }, false);
    expect(g.slice(4)).toEqual([1281, 719]);
    expect(g[2]).toBeCloseTo(1280, 6); // the last 1/2 pixel ends at image column 1280
    expect(g[3]).toBeCloseTo(718, 6);
  });
});

describe('readJpegHeader', () => {
  const raw = cameraLikeImage(97, 61, 3);
  const input = () => sharp(Buffer.from(raw.data), { raw: { width: 97, height: 61, channels: 3 } });

  it('reads the size and EXIF orientation sharp reads, for baseline, progressive and EXIF files', async () => {
    const files = [
      await input().jpeg().toBuffer(),
      await input().jpeg({ progressive: true, chromaSubsampling: '4:4:4' }).toBuffer(),
      ...(await Promise.all([3, 6, 8].map((o) => input().withMetadata({ orientation: o }).jpeg().toBuffer()))),
      await input().withMetadata({ orientation: 5 }).jpeg().toBuffer(),
    ];
    for (const f of files) {
      const m = await sharp(f).metadata();
      expect(readJpegHeader(f)).toEqual({ width: m.width, height: m.height, orientation: m.orientation ?? 1 });
    }
    expect(files.map((f) => readJpegHeader(f)?.orientation)).toEqual([1, 1, 3, 6, 8, 5]);
  });

  it('returns null for what is not a readable JPEG header', async () => {
    const jpeg = await input().jpeg().toBuffer();
    expect(readJpegHeader(await encodePng(raw))).toBeNull();
    expect(readJpegHeader(jpeg.subarray(0, 20))).toBeNull();
    expect(readJpegHeader(new Uint8Array([0xff, 0xd8, 0xff, 0xda, 0, 2]))).toBeNull();
    expect(readJpegHeader(new Uint8Array([0xff, 0xd8, 0x00, 0x00, 0, 0]))).toBeNull();
    const bad = Uint8Array.from(jpeg);
    bad[4] = 0xff; // a segment length past the end
    bad[5] = 0xff;
    expect(readJpegHeader(bad)).toBeNull();
  });
});

describe('the scratch folder of the reduced decode', () => {
  it('removes the folders of processes that are gone, and keeps its own', async () => {
    const { mkdirSync, existsSync, readdirSync } = await import('node:fs');
    const { execFileSync } = await import('node:child_process');
    // A process id that is certainly gone: a child that has exited.
    const dead = Number(execFileSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).toString());
    const stale = `/dev/shm/outpost-decode-${dead}-test`;
    if (!existsSync('/dev/shm')) return;
    mkdirSync(stale, { recursive: true });
    // A fresh module instance, so that it creates its folder (and sweeps) now.
    vi.resetModules();
    const fresh = await import('../../agent/runtime/decode.js');
    const jpeg = await jpegOf(cameraLikeImage(640, 480, 2), 90, '4:2:0');
    expect((await fresh.decodeForNetwork(jpeg, { mode: 'auto', size: [160, 120] })).shrink).toBe(4);
    expect(existsSync(stale)).toBe(false);
    const own = readdirSync('/dev/shm').filter((n) => n.startsWith(`outpost-decode-${process.pid}-`));
    expect(own.length).toBeGreaterThanOrEqual(1);
    // Nothing left behind by the decode itself: the scratch file is unlinked at once.
    for (const d of own) expect(readdirSync(`/dev/shm/${d}`)).toEqual([]);
  });
});
