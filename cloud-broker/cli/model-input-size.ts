import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import type { ModelParameters } from '../../protocol/manifest-types.js';

/**
 * The input size a model file declares, for `model configure` without `--size`: aai refuses
 * there, but the file already says it, so Outpost reads it and says so.
 *
 * - ONNX: the graph's one image input (initializers excluded), [N,3,H,W] or [N,H,W,3], static H
 *   and W (the same channel-axis rule the agent uses to pick NCHW or NHWC).
 * - Darknet: `width=` and `height=` of the cfg's [net] section.
 * - Caffe: the prototxt's first `input_shape { dim: N dim: C dim: H dim: W }` or `input_dim` x4.
 *
 * Returns [width, height] and where it came from, or undefined when the file does not declare
 * a static size (dynamic dimensions, several inputs, an unreadable file): then the usual
 * "--size is required" error stands.
 */
export interface DeclaredSize {
  size: [number, number];
  from: string;
}

/** Model files are read whole to decode them; larger ones are not worth it for a size. */
const MAX_BYTES = 512 * 1024 * 1024;

export async function declaredInputSize(
  dir: string,
  p: Pick<ModelParameters, 'framework_type' | 'model_file' | 'config_file'>,
): Promise<DeclaredSize | undefined> {
  try {
    if (p.framework_type === 'onnx') return await onnxSize(join(dir, p.model_file), p.model_file);
    if (p.framework_type === 'darknet' && p.config_file)
      return await darknetSize(join(dir, p.config_file), p.config_file);
    if (p.framework_type === 'caffe' && p.config_file) return await caffeSize(join(dir, p.config_file), p.config_file);
  } catch {
    // Unreadable or not the format it claims: checkModelFiles reports missing files; the size
    // falls back to the flag rules.
  }
  return undefined;
}

async function onnxSize(path: string, label: string): Promise<DeclaredSize | undefined> {
  if ((await stat(path)).size > MAX_BYTES) return undefined;
  const model = onnxProto.onnx.ModelProto.decode(await readFile(path));
  const graph = model.graph;
  if (!graph) return undefined;
  const inits = new Set((graph.initializer ?? []).map((t) => t.name));
  const inputs = (graph.input ?? []).filter((i) => !inits.has(i.name));
  if (inputs.length !== 1) return undefined;
  const dims = (inputs[0]!.type?.tensorType?.shape?.dim ?? []).map((d) =>
    d.dimValue !== undefined && d.dimValue !== null && Number(d.dimValue) > 0 ? Number(d.dimValue) : null,
  );
  if (dims.length !== 4) return undefined;
  const [, a, b, c] = dims;
  const hw = a === 3 && c !== 3 ? [b, c] : c === 3 && a !== 3 ? [a, b] : undefined;
  if (!hw || hw[0] === null || hw[1] === null) return undefined;
  return { size: [hw[1]!, hw[0]!], from: `the input "${inputs[0]!.name}" of ${label}` };
}

async function small(path: string): Promise<string> {
  const f = await open(path);
  try {
    const buf = Buffer.alloc(1024 * 1024);
    const { bytesRead } = await f.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead).toString('utf8');
  } finally {
    await f.close();
  }
}

async function darknetSize(path: string, label: string): Promise<DeclaredSize | undefined> {
  const text = await small(path);
  const net = /^\s*\[net\]([\s\S]*?)(^\s*\[|$(?![\s\S]))/m.exec(text)?.[1] ?? '';
  const w = Number(/^\s*width\s*=\s*(\d+)/m.exec(net)?.[1]);
  const h = Number(/^\s*height\s*=\s*(\d+)/m.exec(net)?.[1]);
  return w > 0 && h > 0 ? { size: [w, h], from: `[net] of ${label}` } : undefined;
}

async function caffeSize(path: string, label: string): Promise<DeclaredSize | undefined> {
  const text = await small(path);
  const shape = /input_shape\s*\{([^}]*)\}/.exec(text)?.[1];
  const dims = shape
    ? [...shape.matchAll(/dim\s*:\s*(\d+)/g)].map((m) => Number(m[1]))
    : [...text.matchAll(/input_dim\s*:\s*(\d+)/g)].map((m) => Number(m[1]));
  if (dims.length !== 4 || dims[2]! <= 0 || dims[3]! <= 0) return undefined;
  return { size: [dims[3]!, dims[2]!], from: `the input of ${label}` };
}
