import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { sha256Hex, versionContent } from '../helpers/blob-server.js';

/** Fault tests use bigger versions so that a random kill lands in every phase. */
export const N_FILES = 8;
export const FILE_SIZE = 48 * 1024;

export function contentOf(version: number): Map<string, Buffer> {
  return versionContent(version, N_FILES, FILE_SIZE);
}

export function publishedFiles(version: number): { path: string; sha256: string; size: number }[] {
  return [...contentOf(version)].map(([path, data]) => ({ path, sha256: sha256Hex(data), size: data.length }));
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else out.push(p);
  }
  return out;
}

/** Null when `versionDir` holds exactly the files of `version` (paths and sha256), else why not. */
export async function versionProblem(versionDir: string, version: number): Promise<string | null> {
  const want = contentOf(version);
  const have = (await walk(versionDir)).map((p) => relative(versionDir, p)).sort();
  const names = [...want.keys()].sort();
  if (JSON.stringify(have) !== JSON.stringify(names)) return `files ${JSON.stringify(have)} != ${JSON.stringify(names)}`;
  for (const [path, data] of want) {
    const bytes = await readFile(join(versionDir, path));
    if (createHash('sha256').update(bytes).digest('hex') !== sha256Hex(data)) return `${path} differs`;
    if (((await stat(join(versionDir, path))).mode & 0o222) !== 0) return `${path} is writable`;
  }
  return null;
}
