import { OutpostError } from './errors/index.js';
import { show } from './show.js';

/**
 * A model's `colors_file` (the seed's Model JSON table): one colour per class, its own small
 * text format beside alwaysai.model.json. Checked when a model folder is published and when the
 * agent loads a version.
 */
/** Checks a colors file: one `<x>,<y>,<z>` line per class, integers 0-255; blank lines ignored. */
export function parseColorsFile(text: string, label = 'colors_file'): [number, number, number][] {
  const colors: [number, number, number][] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    const m = /^(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})$/.exec(line);
    const rgb = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [];
    if (!m || rgb.some((x) => x > 255)) {
      throw new OutpostError(
        'MODEL_COLORS_INVALID',
        `${label} line ${i + 1} is ${show(line)}; every line must be <x>,<y>,<z> with integers 0-255`,
        { line: i + 1, value: line },
      );
    }
    colors.push(rgb as [number, number, number]);
  }
  if (colors.length === 0) {
    throw new OutpostError('MODEL_COLORS_INVALID', `${label} has no colors; write one <x>,<y>,<z> line per class`, {
      line: 0,
    });
  }
  return colors;
}
