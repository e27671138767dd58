import type SharpFn from 'sharp';
import type { Metadata, OverlayOptions, Sharp } from 'sharp';
import { loadSharp } from '../runtime/load-sharp.js';
import { OutpostError } from '../../protocol/errors/index.js';
import type { RawFrame } from '../runtime/preprocess.js';
import type { PredictResult } from './types.js';

/**
 * Draws a predict result onto its image and returns a PNG: boxes with labels for detections,
 * points for pose keypoints, a half-transparent class-color overlay for segmentation, and the top
 * labels for classification. Drawing is an SVG composited by sharp (libvips), so no canvas
 * library is needed. The result shapes read here are the runtime's (edgeIQ-like, docs/runtime.md);
 * fields that are absent are simply not drawn.
 */
const PALETTE = ['#e6194b', '#3cb44b', '#4363d8', '#f58231', '#911eb4', '#46f0f0', '#f032e6', '#bcf60c'];

interface Box {
  start_x: number;
  start_y: number;
  end_x: number;
  end_y: number;
}
interface Prediction {
  label?: string;
  confidence?: number;
  box?: Box;
  keypoints?: unknown;
}

function esc(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function isBox(b: unknown): b is Box {
  const x = b as Box;
  return !!x && [x.start_x, x.start_y, x.end_x, x.end_y].every((v) => typeof v === 'number' && Number.isFinite(v));
}

/** Keypoints as {x, y} pairs, accepting {name: [x, y]}, [{x, y}] or [[x, y]] forms. */
function points(k: unknown): { x: number; y: number; name?: string }[] {
  const out: { x: number; y: number; name?: string }[] = [];
  const add = (v: unknown, name?: string) => {
    if (Array.isArray(v) && typeof v[0] === 'number' && typeof v[1] === 'number') out.push({ x: v[0], y: v[1], name });
    else if (
      v &&
      typeof v === 'object' &&
      typeof (v as { x: unknown }).x === 'number' &&
      typeof (v as { y: unknown }).y === 'number'
    ) {
      const p = v as { x: number; y: number; name?: string; label?: string };
      // A keypoint the model did not find is null and never reaches here.
      out.push({ x: p.x, y: p.y, name: name ?? p.name ?? p.label });
    }
  };
  if (Array.isArray(k)) k.forEach((v) => add(v));
  else if (k && typeof k === 'object') for (const [name, v] of Object.entries(k)) add(v, name);
  return out.filter((p) => p.x >= 0 && p.y >= 0);
}

function svgFor(result: PredictResult, width: number, height: number): string {
  const parts: string[] = [];
  const font = Math.max(10, Math.round(Math.min(width, height) / 30));
  const stroke = Math.max(1, Math.round(Math.min(width, height) / 200));
  const preds = (Array.isArray(result.predictions) ? result.predictions : []) as Prediction[];
  preds.forEach((p, i) => {
    const color = PALETTE[i % PALETTE.length];
    const text =
      `${p.label ?? ''}${typeof p.confidence === 'number' ? ` ${(p.confidence * 100).toFixed(0)}%` : ''}`.trim();
    if (isBox(p.box)) {
      const b = p.box;
      parts.push(
        `<rect x="${b.start_x}" y="${b.start_y}" width="${Math.max(0, b.end_x - b.start_x)}" height="${Math.max(0, b.end_y - b.start_y)}" fill="none" stroke="${color}" stroke-width="${stroke}"/>`,
      );
      if (text)
        parts.push(
          `<text x="${b.start_x + 2}" y="${Math.max(font, b.start_y - 2)}" font-family="sans-serif" font-size="${font}" fill="${color}">${esc(text)}</text>`,
        );
    }
    for (const k of points(p.keypoints)) {
      parts.push(`<circle cx="${k.x}" cy="${k.y}" r="${stroke * 2 + 1}" fill="${color}"/>`);
    }
  });
  const poses = (Array.isArray(result.poses) ? result.poses : []) as { key_points?: unknown }[];
  poses.forEach((pose, i) => {
    const color = PALETTE[i % PALETTE.length];
    for (const k of points(pose.key_points)) {
      parts.push(`<circle cx="${k.x}" cy="${k.y}" r="${stroke * 2 + 1}" fill="${color}"/>`);
      if (k.name)
        parts.push(
          `<text x="${k.x + stroke * 3}" y="${k.y}" font-family="sans-serif" font-size="${Math.round(font * 0.7)}" fill="${color}">${esc(k.name)}</text>`,
        );
    }
  });
  if (result.purpose === 'Classification') {
    preds.slice(0, 3).forEach((p, i) => {
      const text = `${p.label ?? '?'} ${typeof p.confidence === 'number' ? (p.confidence * 100).toFixed(1) + '%' : ''}`;
      parts.push(
        `<text x="4" y="${(i + 1) * (font + 2)}" font-family="sans-serif" font-size="${font}" fill="#ffffff" stroke="#000000" stroke-width="0.5">${esc(text)}</text>`,
      );
    });
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${parts.join('')}</svg>`;
}

/** The segmentation class map as an RGBA overlay (alpha 50%, 0 where the color is black). */
function segmentationOverlay(result: PredictResult): { data: Buffer; width: number; height: number } | undefined {
  const map = result.class_map as
    | { width?: number; height?: number; data?: ArrayLike<number> }
    | ArrayLike<number>[]
    | undefined;
  const colors = result.colors as [number, number, number][] | undefined;
  if (!map || !Array.isArray(colors)) return undefined;
  let width: number;
  let height: number;
  let at: (i: number) => number;
  if (Array.isArray(map)) {
    height = map.length;
    width = height > 0 ? map[0]!.length : 0;
    at = (i) => map[Math.floor(i / width)]![i % width]!;
  } else if (typeof map.width === 'number' && typeof map.height === 'number' && map.data) {
    width = map.width;
    height = map.height;
    const d = map.data;
    at = (i) => d[i]!;
  } else return undefined;
  if (width <= 0 || height <= 0) return undefined;
  const data = Buffer.alloc(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    const c = colors[at(i)];
    if (!c) continue;
    data[i * 4] = c[0];
    data[i * 4 + 1] = c[1];
    data[i * 4 + 2] = c[2];
    data[i * 4 + 3] = c[0] + c[1] + c[2] === 0 ? 0 : 128;
  }
  return { data, width, height };
}

/** The picture to draw on: encoded bytes, or a raw frame (BGR swapped to the RGB sharp reads). */
function source(sharp: typeof SharpFn, image: Uint8Array | RawFrame): Sharp {
  if (image instanceof Uint8Array) return sharp(image);
  let data = image.data;
  if (image.format === 'bgr') {
    data = Uint8Array.from(image.data);
    for (let i = 0; i < data.length; i += image.channels) {
      const b = data[i]!;
      data[i] = data[i + 2]!;
      data[i + 2] = b;
    }
  }
  return sharp(data, { raw: { width: image.width, height: image.height, channels: image.channels } });
}

export async function annotate(image: Uint8Array | RawFrame, result: PredictResult): Promise<Buffer> {
  const sharp = await loadSharp();
  if (!(image instanceof Uint8Array)) return draw(sharp, source(sharp, image), image.width, image.height, result);
  let meta: Metadata;
  try {
    meta = await sharp(image).metadata();
  } catch (err) {
    throw new OutpostError('API_NOT_AN_IMAGE', `the image cannot be decoded for annotation: ${(err as Error).message}`);
  }
  const width = meta.autoOrient?.width ?? meta.width ?? 0;
  const height = meta.autoOrient?.height ?? meta.height ?? 0;
  return draw(sharp, sharp(image).autoOrient(), width, height, result);
}

async function draw(
  sharp: typeof SharpFn,
  base: Sharp,
  width: number,
  height: number,
  result: PredictResult,
): Promise<Buffer> {
  const layers: OverlayOptions[] = [];
  const seg = segmentationOverlay(result);
  if (seg) {
    // Nearest-neighbour keeps class edges crisp when the map is smaller than the image.
    const scaled = await sharp(seg.data, { raw: { width: seg.width, height: seg.height, channels: 4 } })
      .resize(width, height, { fit: 'fill', kernel: 'nearest' })
      .png()
      .toBuffer();
    layers.push({ input: scaled, top: 0, left: 0 });
  }
  layers.push({ input: Buffer.from(svgFor(result, width, height)), top: 0, left: 0 });
  return base.removeAlpha().composite(layers).png().toBuffer();
}
