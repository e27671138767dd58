import { join } from 'node:path';
import type { CliContext } from '../../../protocol/cli.js';
import { printResult } from '../../../protocol/cli.js';
import { OutpostError } from '../../../protocol/errors/index.js';
import {
  MODEL_JSON,
  PARAMS,
  PARAM_KEYS,
  PLACEHOLDER_ID,
  defaultManifest,
  parseModelManifest,
  paramFlag,
  parseModelPath,
  toModelJson,
} from '../../../protocol/manifest.js';
import { defineCommand, type FlagOptions, type FlagValues } from '../args.js';
import { readIfExists, writeFileAtomic } from '../fs-util.js';
import { declaredInputSize } from '../model-input-size.js';
import { checkModelFiles } from '../model-folder.js';

/** One flag per model parameter (protocol/manifest.ts's PARAMS), same names but --framework. */
const FLAGS = PARAM_KEYS.map((key) => ({ key, flag: paramFlag(key), kind: PARAMS[key] }));
const BOOL_FLAGS = new Set(FLAGS.filter((f) => f.kind === 'boolean').map((f) => f.flag));
const OPTIONS: FlagOptions = Object.fromEntries(FLAGS.map((f) => [f.flag, { type: 'string' as const }]));

const USAGE = `outpost model configure --framework F --purpose P --model_file FILE [flags]

Writes ${MODEL_JSON} in the current folder (the model folder) with every field of the model JSON,
flags filled in, defaults for the rest, and "id" left as ${PLACEHOLDER_ID} for you to set.
If the file exists, its catalog fields (id, license, ...) and unknown keys are kept and the
model parameters are replaced by these flags.

  --framework F            tensorflow, caffe, dldt, enet, darknet, onnx, tensor-rt, myriad, hailo (required)
  --purpose P              Classification, ObjectDetection, PoseEstimation, SemanticSegmentation (required)
  --model_file FILE        the weights, relative to this folder (required; .h5 is not supported)
  --config_file FILE       the model structure (.prototxt, .cfg, .xml, .pbtxt)
  --label_file FILE        one label per line (required for ObjectDetection)
  --colors_file FILE       one <x>,<y>,<z> color per line, integers 0-255
  --mean M                 one number, R,G,B or R G B as aai takes it (default 0 0 0)
  --scalefactor S          number > 0 (default 1)
  --size W H               also WxH or W,H (default: what the model file declares for onnx, darknet
                           and caffe; else 300 300 for tensorflow, 320 320 for darknet and yolo)
  --crop [true|false]      crop before resize (default false)
  --swaprb [true|false]    swap red and blue channels (default false)
  --softmax [true|false]   apply softmax to the output (default false)
  --output_layer_names L.. output layer names: a b c, or a,b,c
  --device D               tensor-rt only: nano, xavier-nx, agx-xavier (required for tensor-rt)
  --architecture A         tensor-rt: yolo, mobilenet_ssd; hailo: yolov3, mobilenet_ssd (required for both);
                           others (optional): the output layout, e.g. yolov8, yolov5, ssd, tf_object_detection
  --quantize_input [B]     hailo only (default true)
  --quantize_output [B]    hailo only (default true)
  --input_format S         hailo: required, e.g. auto; others: NCHW or NHWC where the model cannot tell
  --output_format S        hailo only (required for hailo, e.g. none)
  --json                   print {"file", "manifest"} as one JSON line`;

/**
 * aai's multi-value flags: `--size 300 300`, `--mean 104 117 123`, `--output_layer_names a b`
 * take the following words up to the next flag (numbers for size and mean, at most 2 and 3).
 * They are joined with commas, the form the single-word syntax (`300x300`, `104,117,123`,
 * `a,b`) already has, so both parse the same way.
 */
const MULTI: Record<string, { max: number; numeric: boolean }> = {
  size: { max: 2, numeric: true },
  mean: { max: 3, numeric: true },
  output_layer_names: { max: Infinity, numeric: false },
};
const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i;

/** `--crop` alone means true; `--crop false` takes the next word as its value; multi-value flags join. */
export function preprocessBooleans(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const name = a.startsWith('--') && !a.includes('=') ? a.slice(2) : '';
    const multi = MULTI[name];
    if (multi) {
      const words: string[] = [];
      while (i + 1 < argv.length && words.length < multi.max) {
        const next = argv[i + 1]!;
        if (next.startsWith('--') || (multi.numeric && words.length > 0 && !NUMBER.test(next))) break;
        words.push(next);
        i++;
      }
      // No word: leave the flag bare so the parser reports its missing value as before.
      out.push(words.length === 0 ? a : `${a}=${words.join(',')}`);
    } else if (BOOL_FLAGS.has(name)) {
      const next = argv[i + 1];
      if (next !== undefined && /^(true|false)$/i.test(next)) {
        out.push(`${a}=${next}`);
        i++;
      } else out.push(`${a}=true`);
    } else out.push(a);
  }
  return out;
}

function bad(flag: string, value: string, expected: string): OutpostError {
  return new OutpostError('MODEL_FLAG_INVALID', `--${flag} is "${value}"; expected ${expected}`, { key: flag, value });
}

function numbers(flag: string, value: string, count: number[], sep: RegExp): number[] {
  const inner = value.trim().replace(/^\[(.*)\]$/, '$1');
  const parts = inner.split(sep).map((s) => s.trim());
  const nums = parts.map((s) => (s === '' ? NaN : Number(s)));
  if (!count.includes(nums.length) || nums.some((n) => !Number.isFinite(n))) {
    throw bad(
      flag,
      value,
      flag === 'size'
        ? 'WIDTHxHEIGHT or WIDTH,HEIGHT, e.g. 300x300'
        : 'one number or three comma-separated numbers, e.g. 104,117,123',
    );
  }
  return nums;
}

/** Turns flag strings into the typed parameter values the manifest parser checks. */
export function flagsToParams(values: FlagValues): Record<string, unknown> {
  const p: Record<string, unknown> = {};
  for (const { key, flag, kind } of FLAGS) {
    const v = values[flag];
    if (typeof v !== 'string') continue;
    if (kind === 'boolean') {
      if (!/^(true|false)$/i.test(v)) throw bad(flag, v, 'true or false');
      p[key] = v.toLowerCase() === 'true';
    } else if (key === 'size') {
      p[key] = numbers(flag, v, [2], /[xX,]/);
    } else if (key === 'mean') {
      const n = numbers(flag, v, [1, 3], /,/);
      p[key] = n.length === 1 ? [n[0], n[0], n[0]] : n;
    } else if (kind === 'number') {
      const n = Number(v);
      if (v.trim() === '' || !Number.isFinite(n)) throw bad(flag, v, 'a number > 0, e.g. 0.007843');
      p[key] = n;
    } else {
      p[key] = v;
    }
  }
  return p;
}

/** The existing file's catalog fields and unknown keys, so reconfiguring never loses the id. */
async function existingTopLevel(path: string): Promise<Record<string, unknown> | undefined> {
  const text = await readIfExists(path);
  if (text === undefined) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new OutpostError(
      'MODEL_JSON_SYNTAX',
      `the existing ${MODEL_JSON} is not valid JSON (${(err as Error).message}); fix it or delete it, then run configure again`,
      { path },
    );
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new OutpostError(
      'MODEL_FIELD_INVALID',
      `the existing ${MODEL_JSON} does not hold a JSON object; fix it or delete it`,
      { path },
    );
  }
  const top = { ...(raw as Record<string, unknown>) };
  delete top.model_parameters;
  for (const k of PARAM_KEYS) delete top[k];
  return top;
}

export const modelConfigure = defineCommand({
  usage: USAGE,
  options: OPTIONS,
  preprocess: preprocessBooleans,
  async run({ values, json }, ctx: CliContext) {
    const params = flagsToParams(values);
    // Without --size, the size the model file declares (aai refuses here; the file knows it).
    let sizeNote = '';
    let sizeFrom: string | undefined;
    if (
      params.size === undefined &&
      typeof params.model_file === 'string' &&
      typeof params.framework_type === 'string'
    ) {
      const declared = await declaredInputSize(ctx.cwd, {
        framework_type: params.framework_type as never,
        model_file: parseModelPath(params.model_file, '--model_file'),
        config_file:
          typeof params.config_file === 'string' ? parseModelPath(params.config_file, '--config_file') : undefined,
      });
      if (declared) {
        sizeFrom = declared.from;
        params.size = declared.size;
        sizeNote = `\n  size ${declared.size.join('x')} read from ${declared.from} (no --size given)`;
      }
    }
    // Validate the flags alone first so the messages name --flags, not JSON keys.
    let manifest = defaultManifest(params);
    const target = join(ctx.cwd, MODEL_JSON);
    const top = await existingTopLevel(target);
    if (top !== undefined)
      manifest = parseModelManifest(
        { ...top, model_parameters: toModelJson(manifest).model_parameters },
        { allowPlaceholderId: true },
      );
    await checkModelFiles(ctx.cwd, manifest, (k) => `--${k}`);
    const doc = toModelJson(manifest);
    await writeFileAtomic(target, JSON.stringify(doc, null, 2) + '\n');
    const p = manifest.model_parameters;
    const next =
      manifest.id === PLACEHOLDER_ID
        ? `Next: set "id" in ${MODEL_JSON} to "<your user name>/<model name>", then run \`outpost model publish\`.`
        : `Next: run \`outpost model publish\` to publish ${manifest.id}.`;
    printResult(
      ctx,
      json,
      { file: target, manifest: doc, ...(sizeFrom ? { sizeFrom } : {}) },
      `wrote ${target}\n  framework ${p.framework_type}, purpose ${p.purpose}, size ${p.size.join('x')}, model_file ${p.model_file}${sizeNote}\n${next}`,
    );
    return 0;
  },
});
