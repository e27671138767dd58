import { OutpostError, type ErrorCode } from './errors/index.js';
import { isModelIdPart } from './ids.js';
import { show } from './show.js';
import { BATCHING_KEY, parseDynamicBatching } from './manifest-batching.js';
import {
  DECODE_MODES,
  FRAMEWORKS,
  HAILO_ARCHITECTURES,
  INPUT_FORMATS,
  LAYOUT_ARCHITECTURES,
  PURPOSES,
  TRT_ARCHITECTURES,
  TRT_DEVICES,
  type Architecture,
  type Framework,
  type ModelManifest,
  type ModelParameters,
  type Purpose,
  type TrtDevice,
} from './manifest-types.js';

/**
 * Parsing, defaults and the written form of `alwaysai.model.json` (the seed's "Model JSON" and
 * "Model Configuration Flags" tables). Pure: no I/O. Reading accepts the parameters under
 * `model_parameters` or flat at the top level; writing always nests them. Keys Outpost does not
 * know are kept, at the level where they were found.
 */

export const MODEL_JSON = 'alwaysai.model.json';
export const PLACEHOLDER_ID = '<username>/<modelname>';

export const CATALOG_KEYS = [
  'accuracy',
  'dataset',
  'id',
  'inference_time',
  'license',
  'mean_average_precision_top_1',
  'mean_average_precision_top_5',
  'public',
  'website_url',
] as const;

/**
 * The seed's table of model parameters, in its order, with the kind of value each holds: the
 * parser below checks each key, and `outpost model configure` derives its flags from it (one
 * flag per key, named by paramFlag; booleans take an optional true/false, numbers one word,
 * lists several).
 */
export const PARAMS = {
  framework_type: 'string',
  model_file: 'string',
  mean: 'numbers',
  scalefactor: 'number',
  size: 'numbers',
  purpose: 'string',
  crop: 'boolean',
  config_file: 'string',
  label_file: 'string',
  colors_file: 'string',
  swaprb: 'boolean',
  softmax: 'boolean',
  output_layer_names: 'strings',
  device: 'string',
  architecture: 'string',
  quantize_input: 'boolean',
  quantize_output: 'boolean',
  input_format: 'string',
  output_format: 'string',
} as const satisfies Record<string, 'string' | 'number' | 'numbers' | 'strings' | 'boolean'>;

export type ParamKey = keyof typeof PARAMS;
export const PARAM_KEYS = Object.keys(PARAMS) as readonly ParamKey[];

/** The configure flag of a parameter: its key, except framework_type, which aai spells --framework. */
export function paramFlag(key: ParamKey): string {
  return key === 'framework_type' ? 'framework' : key;
}

/** The parameters that name a file of the model folder. */
export const FILE_KEYS = ['model_file', 'config_file', 'label_file', 'colors_file'] as const;

export interface ParseManifestOptions {
  /** Accept the `<username>/<modelname>` placeholder id (configure writes it; publish refuses it). */
  allowPlaceholderId?: boolean;
  /**
   * The values came from `outpost model configure` flags: errors use the MODEL_FLAG_* codes and
   * name `--flag` instead of the JSON key, since the user typed flags, not JSON.
   */
  asFlags?: boolean;
}

/** Size defaults of the seed: tensorflow 300x300; darknet and yolo architectures 320x320. */
export function defaultSize(framework: Framework, architecture?: string): [number, number] | undefined {
  if (framework === 'tensorflow') return [300, 300];
  if (framework === 'darknet' || architecture === 'yolo' || architecture === 'yolov3') return [320, 320];
  return undefined;
}

/** Builds the manifest `outpost model configure` writes from already-typed flag values. */
export function defaultManifest(flags: Partial<Record<ParamKey, unknown>>): ModelManifest {
  return parseModelManifest(
    { id: PLACEHOLDER_ID, model_parameters: flags },
    { allowPlaceholderId: true, asFlags: true },
  );
}

class Ctx {
  constructor(private readonly opts: ParseManifestOptions) {}
  label(key: string): string {
    if (!this.opts.asFlags) return `"${key}"`;
    return `--${key in PARAMS ? paramFlag(key as ParamKey) : key}`;
  }
  /** How to write a size where the user writes it: a flag or the JSON file. */
  sizeExample(): string {
    return this.opts.asFlags ? 'add e.g. --size 224x224' : 'add e.g. "size": [224, 224] to "model_parameters"';
  }
  missing(key: string, why: string): OutpostError {
    const code: ErrorCode = this.opts.asFlags ? 'MODEL_FLAG_MISSING' : 'MODEL_FIELD_MISSING';
    return new OutpostError(code, `${this.label(key)} is required ${why}`, { key });
  }
  invalid(key: string, value: unknown, expected: string): OutpostError {
    const code: ErrorCode = this.opts.asFlags ? 'MODEL_FLAG_INVALID' : 'MODEL_FIELD_INVALID';
    return new OutpostError(code, `${this.label(key)} is ${show(value)}; expected ${expected}`, { key, value });
  }
}

/** Empty strings and null mean "not set": the written file carries every key, unset ones empty. */
function isUnset(v: unknown): boolean {
  return v === undefined || v === null || v === '';
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function parseModelManifest(input: unknown, opts: ParseManifestOptions = {}): ModelManifest {
  const c = new Ctx(opts);
  if (!isObject(input)) {
    throw new OutpostError('MODEL_FIELD_INVALID', `${MODEL_JSON} must hold one JSON object, got ${show(input)}`, {
      value: input,
    });
  }
  const nested = input.model_parameters;
  if (nested !== undefined && !isObject(nested)) throw c.invalid('model_parameters', nested, 'an object');
  const rawParams: Record<string, unknown> = nested ?? pick(input, PARAM_KEYS);

  const top: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(input)) {
    if (k === 'model_parameters' || (nested === undefined && (PARAM_KEYS as readonly string[]).includes(k))) continue;
    if (!(CATALOG_KEYS as readonly string[]).includes(k)) top[k] = v;
  }
  return {
    ...top,
    accuracy: str(c, input, 'accuracy'),
    dataset: str(c, input, 'dataset'),
    id: parseManifestId(c, input.id, opts.allowPlaceholderId ?? false),
    inference_time: num(c, input, 'inference_time', 0),
    license: str(c, input, 'license'),
    mean_average_precision_top_1: num(c, input, 'mean_average_precision_top_1', 0),
    mean_average_precision_top_5: num(c, input, 'mean_average_precision_top_5', 0),
    public: bool(c, input, 'public', false),
    website_url: str(c, input, 'website_url'),
    model_parameters: parseParams(c, rawParams),
  };
}

function pick(o: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (k in o) out[k] = o[k];
  return out;
}

function parseManifestId(c: Ctx, v: unknown, allowPlaceholder: boolean): string {
  if (isUnset(v)) {
    if (allowPlaceholder) return PLACEHOLDER_ID;
    throw new OutpostError(
      'MODEL_PLACEHOLDER_ID',
      `"id" is empty; set it to "<your user name>/<model name>" in ${MODEL_JSON}`,
      { key: 'id' },
    );
  }
  if (v === PLACEHOLDER_ID) {
    if (allowPlaceholder) return v;
    throw new OutpostError(
      'MODEL_PLACEHOLDER_ID',
      `"id" is still the placeholder ${PLACEHOLDER_ID}; open ${MODEL_JSON} and set it to "<your user name>/<model name>", e.g. "alice/my-detector"`,
      { key: 'id', value: v },
    );
  }
  const parts = typeof v === 'string' ? v.split('/') : [];
  if (parts.length !== 2 || !isModelIdPart(parts[0]) || !isModelIdPart(parts[1])) {
    throw c.invalid('id', v, '"owner/name" (letters, digits, . _ -, at most 64 each)');
  }
  return v as string;
}

function str(c: Ctx, o: Record<string, unknown>, key: string): string {
  const v = o[key];
  if (isUnset(v)) return '';
  if (typeof v === 'number') return String(v);
  if (typeof v !== 'string') throw c.invalid(key, v, 'a string');
  return v;
}

function optStr(c: Ctx, o: Record<string, unknown>, key: string): string | undefined {
  const s = str(c, o, key).trim();
  return s === '' ? undefined : s;
}

function num(c: Ctx, o: Record<string, unknown>, key: string, dflt: number): number {
  const v = o[key];
  if (isUnset(v)) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw c.invalid(key, v, 'a number >= 0');
  return v;
}

function bool(c: Ctx, o: Record<string, unknown>, key: string, dflt: boolean): boolean {
  const v = o[key];
  if (isUnset(v)) return dflt;
  if (typeof v !== 'boolean') throw c.invalid(key, v, 'true or false');
  return v;
}

function oneOf<T extends string>(
  c: Ctx,
  o: Record<string, unknown>,
  key: string,
  allowed: readonly T[],
  why: string | null,
): T | undefined {
  const v = o[key];
  if (isUnset(v)) {
    if (why !== null) throw c.missing(key, `${why} (one of: ${allowed.join(', ')})`);
    return undefined;
  }
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw c.invalid(key, v, `one of: ${allowed.join(', ')}`);
  }
  return v as T;
}

/**
 * A path inside the model folder: relative POSIX, no `..`, no empty or `.` segments after
 * normalising a leading `./`, no backslash or NUL. Whether it resolves through a symlink to
 * somewhere else is checked by the CLI against the real folder.
 */
export function parseModelPath(value: string, label: string): string {
  const p = value.startsWith('./') ? value.slice(2) : value;
  const bad =
    p === '' ||
    p.startsWith('/') ||
    /^[A-Za-z]:/.test(p) ||
    p.includes('\\') ||
    p.includes('\0') ||
    p.split('/').some((s) => s === '..' || s === '.' || s === '');
  if (bad) {
    throw new OutpostError(
      'MODEL_PATH_OUTSIDE',
      `${label} is ${show(value)}: paths must be relative to the model folder, without ".." and not absolute; copy the file into the folder`,
      { key: label, value },
    );
  }
  return p;
}

function filePath(c: Ctx, o: Record<string, unknown>, key: string, required: string | null): string | undefined {
  const v = optStr(c, o, key);
  if (v === undefined) {
    if (required !== null) throw c.missing(key, required);
    return undefined;
  }
  const p = parseModelPath(v, c.label(key));
  if (/\.h5$/i.test(p)) {
    throw new OutpostError(
      'MODEL_H5_UNSUPPORTED',
      `${c.label(key)} is ${show(v)}: we currently do not support h5 format; convert the model (for example to ONNX) first`,
      { key, value: v },
    );
  }
  return p;
}

function triple(c: Ctx, v: unknown, key: string): [number, number, number] {
  if (typeof v === 'number' && Number.isFinite(v)) return [v, v, v];
  if (Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    return v as [number, number, number];
  }
  throw c.invalid(key, v, 'three numbers [R, G, B] (or one number for all three)');
}

function size(c: Ctx, v: unknown): [number, number] {
  const ok = (x: unknown) => typeof x === 'number' && Number.isInteger(x) && x >= 1 && x <= 16384;
  if (Array.isArray(v) && v.length === 2 && v.every(ok)) return v as [number, number];
  throw c.invalid('size', v, '[width, height] with integers 1-16384');
}

function parseParams(c: Ctx, p: Record<string, unknown>): ModelParameters {
  const framework = oneOf(c, p, 'framework_type', FRAMEWORKS, 'for every model')!;
  const purpose = oneOf(c, p, 'purpose', PURPOSES, 'for every model')! as Purpose;
  const trt = framework === 'tensor-rt';
  const hailo = framework === 'hailo';

  const device = oneOf<TrtDevice>(c, p, 'device', TRT_DEVICES, trt ? 'for tensor-rt models' : null);
  if (device !== undefined && !trt)
    throw c.invalid('device', p.device, 'no value: device applies only to tensor-rt models');
  const archs: readonly string[] = trt ? TRT_ARCHITECTURES : hailo ? HAILO_ARCHITECTURES : [];
  let architecture: Architecture | undefined;
  if (trt || hailo) {
    architecture = oneOf(c, p, 'architecture', archs, `for ${framework} models`) as Architecture;
  } else if (!isUnset(p.architecture)) {
    const a =
      typeof p.architecture === 'string'
        ? p.architecture
            .trim()
            .toLowerCase()
            .replace(/_pose$/, '-pose')
        : '';
    if (!(LAYOUT_ARCHITECTURES as readonly string[]).includes(a))
      throw c.invalid(
        'architecture',
        p.architecture,
        `for ${framework} models an output layout: ${LAYOUT_ARCHITECTURES.join(', ')}`,
      );
    architecture = a as Architecture;
  }

  const sz = isUnset(p.size) ? defaultSize(framework, architecture) : size(c, p.size);
  if (sz === undefined)
    throw c.missing('size', `for ${framework} models, which have no default input size (${c.sizeExample()})`);
  const scalefactor = isUnset(p.scalefactor) ? 1 : p.scalefactor;
  if (typeof scalefactor !== 'number' || !Number.isFinite(scalefactor) || scalefactor <= 0) {
    throw c.invalid('scalefactor', scalefactor, 'a number > 0');
  }
  let outputs: string[] | undefined;
  const o = p.output_layer_names;
  if (typeof o === 'string' && o.trim() !== '')
    outputs = o
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
  else if (Array.isArray(o) && o.every((s) => typeof s === 'string' && s !== ''))
    outputs = o.length ? (o as string[]) : undefined;
  else if (!isUnset(o) && !(typeof o === 'string')) throw c.invalid('output_layer_names', o, 'a list of layer names');

  const params: ModelParameters = {
    framework_type: framework,
    model_file: filePath(c, p, 'model_file', 'for every model (the file with the weights)')!,
    mean: isUnset(p.mean) ? [0, 0, 0] : triple(c, p.mean, 'mean'),
    scalefactor,
    size: sz,
    purpose,
    crop: bool(c, p, 'crop', false),
    config_file: filePath(c, p, 'config_file', null),
    label_file: filePath(
      c,
      p,
      'label_file',
      purpose === 'ObjectDetection' ? 'for ObjectDetection models (one label per line)' : null,
    ),
    colors_file: filePath(c, p, 'colors_file', null),
    swaprb: bool(c, p, 'swaprb', false),
    softmax: bool(c, p, 'softmax', false),
    output_layer_names: outputs,
    device,
    architecture,
    quantize_input: hailo ? bool(c, p, 'quantize_input', true) : optBool(c, p, 'quantize_input'),
    quantize_output: hailo ? bool(c, p, 'quantize_output', true) : optBool(c, p, 'quantize_output'),
    input_format: optStr(c, p, 'input_format'),
    output_format: optStr(c, p, 'output_format'),
  };
  if (!hailo && params.input_format !== undefined) {
    const f = INPUT_FORMATS.find((x) => x.toLowerCase() === params.input_format!.toLowerCase());
    if (!f)
      throw c.invalid('input_format', p.input_format, `for ${framework} models one of: ${INPUT_FORMATS.join(', ')}`);
    params.input_format = f;
  }
  if (!isUnset(p.letterbox)) params.letterbox = bool(c, p, 'letterbox', false);
  const decode = oneOf(c, p, 'decode', DECODE_MODES, null);
  const batching = parseDynamicBatching(p[BATCHING_KEY], (k, v, e) => c.invalid(k, v, e));
  if (hailo && params.input_format === undefined)
    throw c.missing('input_format', 'for hailo models (for example "auto")');
  if (hailo && params.output_format === undefined)
    throw c.missing('output_format', 'for hailo models (for example "none")');
  for (const [k, v] of Object.entries(p)) {
    if (!(PARAM_KEYS as readonly string[]).includes(k)) params[k] = v;
  }
  // After the copy of unknown keys, so that an unset value ("" or null) leaves no key behind.
  if (decode !== undefined) params.decode = decode;
  else delete params.decode;
  if (batching !== undefined) params.dynamic_batching = batching;
  else delete params.dynamic_batching;
  return params;
}

function optBool(c: Ctx, o: Record<string, unknown>, key: string): boolean | undefined {
  return isUnset(o[key]) ? undefined : bool(c, o, key, false);
}

/** The relative paths of every file the manifest names, deduplicated, in key order. */
export function manifestFiles(m: ModelManifest): string[] {
  const out: string[] = [];
  for (const k of FILE_KEYS) {
    const v = m.model_parameters[k];
    if (typeof v === 'string' && !out.includes(v)) out.push(v);
  }
  return out;
}

/**
 * The written form: every key of the seed's table, in the table's order, unset optional values
 * as "" (strings), [] (output layers) or null (quantize flags of non-hailo models), then unknown
 * keys as they came.
 */
export function toModelJson(m: ModelManifest): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of CATALOG_KEYS) out[k] = m[k];
  for (const [k, v] of Object.entries(m)) if (!(k in out) && k !== 'model_parameters') out[k] = v;
  const p = m.model_parameters;
  const params: Record<string, unknown> = {};
  for (const k of PARAM_KEYS) {
    const v = p[k];
    if (v !== undefined) params[k] = v;
    else params[k] = k === 'output_layer_names' ? [] : k.startsWith('quantize_') ? null : '';
  }
  for (const [k, v] of Object.entries(p)) if (!(k in params)) params[k] = v;
  out.model_parameters = params;
  return out;
}
