import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** Every path under `dir` (folders too), depth first; an absent folder is empty. */
export async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    const p = join(dir, e.name);
    out.push(p);
    if (e.isDirectory()) out.push(...(await walk(p)));
  }
  return out;
}
