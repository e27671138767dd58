import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';

/** What a folder should hold: each file's path relative to it, sha256 and size. */
export interface ExpectedFile {
  path: string;
  sha256: string;
  size: number;
}

/** Paths of the files under `dir`, recursively (directories themselves are not listed). */
export async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else out.push(p);
  }
  return out;
}

/**
 * Null when `dir` holds exactly `files`: the same paths, nothing more, and every file of the
 * signed size and sha256 (hashed, not trusted by name). Otherwise the first difference, in words.
 */
export async function folderProblem(dir: string, files: readonly ExpectedFile[]): Promise<string | null> {
  const have = (await filesUnder(dir)).map((p) => relative(dir, p)).sort();
  const want = files.map((x) => x.path).sort();
  if (JSON.stringify(have) !== JSON.stringify(want)) return `files ${JSON.stringify(have)} != ${JSON.stringify(want)}`;
  for (const file of files) {
    const data = await readFile(join(dir, file.path));
    const sha = createHash('sha256').update(data).digest('hex');
    if (sha !== file.sha256 || data.length !== file.size)
      return `${file.path}: ${data.length} bytes ${sha.slice(0, 12)}, signed ${file.size} ${file.sha256.slice(0, 12)}`;
  }
  return null;
}
