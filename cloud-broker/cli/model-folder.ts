import { join } from 'node:path';
import { OutpostError } from '../../protocol/errors/index.js';
import { FILE_KEYS, MODEL_JSON, parseModelManifest } from '../../protocol/manifest.js';
import { parseColorsFile } from '../../protocol/colors-file.js';
import type { ModelManifest } from '../../protocol/manifest-types.js';
import { readIfExists, resolveInside } from './fs-util.js';

/** Checks that every named file is a regular file inside the folder, and the colors file's lines. */
export async function checkModelFiles(
  dir: string,
  m: ModelManifest,
  labelOf: (key: string) => string,
): Promise<Map<string, string>> {
  const abs = new Map<string, string>();
  for (const key of FILE_KEYS) {
    const rel = m.model_parameters[key];
    if (typeof rel !== 'string') continue;
    const r = await resolveInside(dir, rel, labelOf(key));
    abs.set(rel, r.abs);
    if (key === 'colors_file') parseColorsFile((await readIfExists(r.abs)) ?? '', `${labelOf(key)} "${rel}"`);
  }
  return abs;
}

/** Reads and validates `<dir>/alwaysai.model.json` for publishing (a real id is required). */
export async function readModelJson(dir: string): Promise<{ path: string; manifest: ModelManifest }> {
  const path = join(dir, MODEL_JSON);
  const text = await readIfExists(path);
  if (text === undefined) {
    throw new OutpostError(
      'MODEL_JSON_MISSING',
      `there is no ${MODEL_JSON} in ${dir}; run \`outpost model configure\` in the model folder first`,
      { path },
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new OutpostError(
      'MODEL_JSON_SYNTAX',
      `${path} is not valid JSON (${(err as Error).message}); fix it or run \`outpost model configure\` again`,
      { path },
    );
  }
  return { path, manifest: parseModelManifest(raw) };
}
