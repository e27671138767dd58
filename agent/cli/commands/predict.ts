import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { printError, printResult, type Command } from '../../../protocol/cli.js';
import { OutpostError } from '../../../protocol/errors/index.js';
import { parseModelId } from '../../../protocol/ids.js';
import { AgentClient, type PredictAnswer } from '../../client/index.js';
import { writeFileAtomic } from '../../fs/atomic-file.js';

const HELP = `usage: outpost predict <image> --model <owner/name> [--annotate OUT.png] [--json]
                       [--confidence 0..1] [--top-k N] [--version V] [--socket PATH]

Runs the model on a JPEG or PNG image through the local agent (its own pre- and post-processing)
and prints the results; --annotate also writes the image with the results drawn on it.
The socket is --socket, else $OUTPOST_SOCKET, else /run/outpost/agent.sock.
`;

/** `outpost predict <image> --model owner/name [--annotate out.png] [--json] [--socket PATH]` */
export const predict: Command = async (argv, ctx) => {
  let json = argv.includes('--json');
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: {
        model: { type: 'string' },
        annotate: { type: 'string' },
        json: { type: 'boolean' },
        socket: { type: 'string' },
        confidence: { type: 'string' },
        'top-k': { type: 'string' },
        version: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: true,
    });
    json = values.json === true;
    if (values.help) {
      ctx.stdout.write(HELP);
      return 0;
    }
    if (positionals.length !== 1) throw new OutpostError('USAGE', `give exactly one image file\n${HELP}`);
    if (!values.model) throw new OutpostError('USAGE', `--model owner/name is required\n${HELP}`);
    parseModelId(values.model, '--model');
    const confidence = optNumber(values.confidence, '--confidence', 0, 1, false);
    const topK = optNumber(values['top-k'], '--top-k', 1, 10_000, true);
    const version = optNumber(values.version, '--version', 1, Number.MAX_SAFE_INTEGER, true);
    const path = resolve(ctx.cwd, positionals[0]!);
    const image = await readFile(path).catch((err: NodeJS.ErrnoException) => {
      throw new OutpostError(
        err.code === 'ENOENT' ? 'NOT_FOUND' : 'IO_ERROR',
        `cannot read the image ${path}: ${err.message}`,
        { path },
      );
    });
    const client = new AgentClient({ socket: values.socket ?? ctx.env.OUTPOST_SOCKET });
    const opts = { confidence, topK, version, signal: ctx.signal };
    const answer = await client.predict(values.model, image, opts);
    let annotated: string | undefined;
    if (values.annotate) {
      const png = await client.predict(values.model, image, { ...opts, annotate: true });
      annotated = resolve(ctx.cwd, values.annotate);
      await writeFileAtomic(annotated, png);
    }
    printResult(
      ctx,
      json,
      annotated ? { ...answer, annotated } : answer,
      humanResult(answer) + (annotated ? `\nannotated image: ${annotated}` : ''),
    );
    return 0;
  } catch (err) {
    if (err instanceof TypeError && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      return printError(ctx, json, new OutpostError('USAGE', `${err.message}\n${HELP}`));
    }
    return printError(ctx, json, err);
  }
};

function optNumber(
  raw: string | undefined,
  flag: string,
  min: number,
  max: number,
  integer: boolean,
): number | undefined {
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    throw new OutpostError(
      'USAGE',
      `${flag} ${JSON.stringify(raw)} must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}`,
      { flag, value: raw },
    );
  }
  return v;
}

const pct = (c: unknown) => (typeof c === 'number' ? `${(c * 100).toFixed(1)}%` : '');

/** One line per prediction, in the words edgeIQ's examples print. */
export function humanResult(a: PredictAnswer): string {
  const lines = [
    `${a.model} v${a.version} (${a.purpose ?? 'unknown purpose'}), inference ${typeof a.duration === 'number' ? (a.duration * 1000).toFixed(1) + ' ms' : '?'}`,
  ];
  const preds = (a.predictions ?? []) as {
    label?: string;
    confidence?: number;
    box?: { start_x: number; start_y: number; end_x: number; end_y: number };
  }[];
  if (a.purpose === 'Classification') for (const p of preds) lines.push(`  ${p.label}: ${pct(p.confidence)}`);
  if (a.purpose === 'ObjectDetection') {
    if (preds.length === 0) lines.push('  no objects above the confidence threshold');
    for (const p of preds)
      lines.push(
        `  ${p.label}: ${pct(p.confidence)} at (${p.box?.start_x}, ${p.box?.start_y})-(${p.box?.end_x}, ${p.box?.end_y})`,
      );
  }
  if (a.purpose === 'PoseEstimation') {
    const poses = (a.poses ?? []) as { score?: number; key_points?: Record<string, { x: number; y: number } | null> }[];
    poses.forEach((p, i) => {
      const found = Object.entries(p.key_points ?? {})
        .filter(([, k]) => k)
        .map(([n, k]) => `${n}=(${k!.x}, ${k!.y})`);
      lines.push(`  pose ${i + 1} (score ${p.score?.toFixed?.(2) ?? '?'}): ${found.join(' ') || 'no key points'}`);
    });
  }
  if (a.purpose === 'SemanticSegmentation') {
    const map = (a.class_map ?? []) as number[][];
    const names = (a.class_list ?? []) as string[];
    const counts = new Map<number, number>();
    for (const row of map) for (const c of row) counts.set(c, (counts.get(c) ?? 0) + 1);
    const total = map.length * (map[0]?.length ?? 0) || 1;
    for (const [c, n] of [...counts].sort((x, y) => y[1] - x[1]))
      lines.push(`  ${names[c] ?? `class ${c}`}: ${((n / total) * 100).toFixed(1)}% of pixels`);
  }
  return lines.join('\n');
}
