import { open, stat } from 'node:fs/promises';
import { extname, isAbsolute, relative, resolve } from 'node:path';
import { OutpostError } from '../../../protocol/errors/index.js';
import type { Framework, ModelParameters } from '../../../protocol/manifest-types.js';

/**
 * Checks a model's files in TypeScript before OpenCV sees them, so that a wrong name, a swapped
 * pair or an empty file gets a precise code (ADDON_MODEL_FILE_MISSING / ADDON_MODEL_MISMATCH)
 * instead of an OpenCV parse error, and finds the network's input name where the files state it.
 *
 * Extensions follow the seed's table (Caffe .caffemodel + .prototxt/.prototext, Darknet
 * .weights + .cfg, TensorFlow .pb [+ .pbtxt], ENet .net, ONNX .onnx).
 */
export type OpenCvFramework = Extract<Framework, 'caffe' | 'darknet' | 'tensorflow' | 'enet' | 'onnx'>;

interface Rule {
  model: string[];
  config: string[] | null;
  configRequired: boolean;
}

const RULES: Record<OpenCvFramework, Rule> = {
  caffe: { model: ['.caffemodel'], config: ['.prototxt', '.prototext'], configRequired: true },
  darknet: { model: ['.weights'], config: ['.cfg'], configRequired: true },
  tensorflow: { model: ['.pb'], config: ['.pbtxt'], configRequired: false },
  enet: { model: ['.net', '.t7'], config: null, configRequired: false },
  onnx: { model: ['.onnx'], config: null, configRequired: false },
};

export interface CheckedFiles {
  model: string;
  config?: string;
  /** The network's input name when the files state it (Caffe prototxt, TF Placeholder, ONNX graph input). */
  inputName?: string;
}

export async function checkOpenCvFiles(dir: string, params: ModelParameters): Promise<CheckedFiles> {
  const framework = params.framework_type as OpenCvFramework;
  const rule = RULES[framework];
  if (!rule)
    throw new OutpostError(
      'ADDON_MODEL_MISMATCH',
      `framework_type "${params.framework_type}" is not run by OpenCV DNN`,
      { framework: params.framework_type },
    );
  const model = await existing(dir, params.model_file, 'model_file');
  expectExt(model, rule.model, 'model_file', framework);
  let config: string | undefined;
  if (params.config_file && rule.config) {
    config = await existing(dir, params.config_file, 'config_file');
    expectExt(config, rule.config, 'config_file', framework);
    if (await looksBinary(config)) {
      throw new OutpostError(
        'ADDON_MODEL_MISMATCH',
        `config_file ${params.config_file} is binary, but the ${framework} config is a text file (${rule.config.join(' or ')}); are model_file and config_file swapped?`,
        { file: params.config_file },
      );
    }
  } else if (rule.configRequired) {
    throw new OutpostError(
      'ADDON_MODEL_FILE_MISSING',
      `framework ${framework} needs config_file (${rule.config?.join(' or ')}) in alwaysai.model.json`,
      { key: 'config_file' },
    );
  }
  if (framework === 'darknet') await checkDarknetWeights(model);
  return { model, config, inputName: await findInputName(framework, model, config) };
}

async function existing(dir: string, file: string, key: string): Promise<string> {
  const full = resolve(dir, file);
  const rel = relative(resolve(dir), full);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) {
    throw new OutpostError(
      'ADDON_MODEL_FILE_MISSING',
      `${key} ${file} resolves outside the model folder ${dir}; use a relative path inside it`,
      { key, file },
    );
  }
  const st = await stat(full).catch(() => null);
  if (!st?.isFile())
    throw new OutpostError('ADDON_MODEL_FILE_MISSING', `${key} ${file} does not exist in ${dir}`, { key, file });
  if (st.size === 0) throw new OutpostError('ADDON_MODEL_FILE_MISSING', `${key} ${file} is empty`, { key, file });
  return full;
}

function expectExt(file: string, allowed: string[], key: string, framework: string): void {
  const ext = extname(file).toLowerCase();
  if (!allowed.includes(ext)) {
    throw new OutpostError(
      'ADDON_MODEL_MISMATCH',
      `${key} ${file} has extension "${ext}", but ${framework} expects ${allowed.join(' or ')}; check framework_type and the file names`,
      { key, file, framework },
    );
  }
}

async function head(file: string, n: number): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Text configs have no control bytes besides tab/newline/CR; protobuf binaries are full of them. */
async function looksBinary(file: string): Promise<boolean> {
  const b = await head(file, 4096);
  let control = 0;
  for (const c of b) if (c < 0x09 || (c > 0x0d && c < 0x20) || c === 0x7f) control++;
  return control > b.length / 100;
}

/**
 * Darknet weights start with int32 major, minor, revision and a "seen" counter (int64 from 0.2
 * on, int32 before); the rest is float32. A file whose header or length breaks that is not
 * Darknet weights (OpenCV would read garbage weights without complaint).
 */
async function checkDarknetWeights(file: string): Promise<void> {
  const h = await head(file, 20);
  const size = (await stat(file)).size;
  const major = h.length >= 12 ? h.readInt32LE(0) : -1;
  const minor = h.length >= 12 ? h.readInt32LE(4) : -1;
  const headerBytes = major * 10 + minor >= 2 ? 20 : 16;
  const sane =
    major >= 0 && major < 100 && minor >= 0 && minor < 1000 && size > headerBytes && (size - headerBytes) % 4 === 0;
  if (!sane)
    throw new OutpostError(
      'ADDON_MODEL_MISMATCH',
      `model_file ${file} is not Darknet weights (bad header: version ${major}.${minor}, ${size} bytes)`,
      { file },
    );
}

async function findInputName(framework: OpenCvFramework, model: string, config?: string): Promise<string | undefined> {
  try {
    if (framework === 'caffe' && config) {
      const text = (await head(config, 65536)).toString('utf8');
      const m = /^\s*input\s*:\s*"([^"]+)"/m.exec(text) ?? /type\s*:\s*"Input"[\s\S]*?top\s*:\s*"([^"]+)"/.exec(text);
      return m?.[1];
    }
    if (framework === 'tensorflow') return firstPlaceholder(await readAll(model));
    if (framework === 'onnx') return firstOnnxInput(await readAll(model));
  } catch {
    // A name we cannot find is not an error: the single input is bound by position.
  }
  return undefined;
}

async function readAll(file: string): Promise<Buffer> {
  const { readFile } = await import('node:fs/promises');
  return readFile(file);
}

/** Length-delimited fields of one protobuf message: field number -> list of byte ranges. */
function fields(buf: Buffer, start = 0, end = buf.length): Map<number, Buffer[]> {
  const out = new Map<number, Buffer[]>();
  let i = start;
  const varint = (): number => {
    let v = 0,
      shift = 0,
      b: number;
    do {
      if (i >= end) throw new Error('truncated varint');
      b = buf[i++]!;
      v += (b & 0x7f) * 2 ** shift;
      shift += 7;
    } while (b & 0x80);
    return v;
  };
  while (i < end) {
    const tag = varint();
    const wire = tag & 7,
      field = Math.floor(tag / 8);
    if (wire === 0) varint();
    else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else if (wire === 2) {
      const len = varint();
      if (i + len > end) throw new Error('truncated field');
      const list = out.get(field) ?? [];
      list.push(buf.subarray(i, i + len));
      out.set(field, list);
      i += len;
    } else throw new Error(`wire type ${wire}`);
  }
  return out;
}

const str = (b: Buffer | undefined): string | undefined => b?.toString('utf8');

/** GraphDef.node (1) -> NodeDef {name: 1, op: 2}. */
function firstPlaceholder(pb: Buffer): string | undefined {
  for (const node of fields(pb).get(1) ?? []) {
    const f = fields(node);
    if (str(f.get(2)?.[0]) === 'Placeholder') return str(f.get(1)?.[0]);
  }
  return undefined;
}

/** ModelProto.graph (7) -> GraphProto {initializer: 5, input: 11 -> ValueInfoProto.name: 1}. */
function firstOnnxInput(onnx: Buffer): string | undefined {
  const graph = fields(onnx).get(7)?.[0];
  if (!graph) return undefined;
  const g = fields(graph);
  const inits = new Set((g.get(5) ?? []).map((t) => str(fields(t).get(8)?.[0])));
  for (const vi of g.get(11) ?? []) {
    const name = str(fields(vi).get(1)?.[0]);
    if (name && !inits.has(name)) return name;
  }
  return undefined;
}
