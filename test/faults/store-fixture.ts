import { mkdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sha256Hex, versionContent } from '../helpers/blob-server.js';
import { folderProblem } from '../helpers/folder-check.js';

/** Fault tests use bigger versions so that a random kill lands in every phase. */
export const N_FILES = 8;
export const FILE_SIZE = 48 * 1024;

export function contentOf(version: number): Map<string, Buffer> {
  return versionContent(version, N_FILES, FILE_SIZE);
}

export function publishedFiles(version: number): { path: string; sha256: string; size: number }[] {
  return [...contentOf(version)].map(([path, data]) => ({ path, sha256: sha256Hex(data), size: data.length }));
}

/**
 * Null when `versionDir` holds exactly the files of `version` (paths, sizes, sha256) and all of
 * them read-only, else why not.
 */
export async function versionProblem(versionDir: string, version: number): Promise<string | null> {
  const problem = await folderProblem(versionDir, publishedFiles(version));
  if (problem) return problem;
  for (const path of contentOf(version).keys()) {
    if (((await stat(join(versionDir, path))).mode & 0o222) !== 0) return `${path} is writable`;
  }
  return null;
}

const here = dirname(fileURLToPath(import.meta.url));

/**
 * Node arguments that run store-kill-child.ts. The child is bundled once with esbuild so that it
 * starts in ~0.1 s instead of tsx's ~0.8 s (falls back to tsx when esbuild is not there). The
 * bundle goes inside node_modules so that its external packages (pino) resolve.
 */
export async function childCommand(): Promise<{ args: string[]; cleanup: string | null }> {
  const entry = join(here, 'store-kill-child.ts');
  try {
    const { build } = await import('esbuild');
    const outDir = join(here, '../../node_modules/.cache/outpost-faults');
    await mkdir(outDir, { recursive: true });
    const outfile = join(outDir, `store-kill-child-${process.pid}-${Math.random().toString(36).slice(2)}.mjs`);
    await build({
      entryPoints: [entry],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      outfile,
      logLevel: 'error',
    });
    return { args: [outfile], cleanup: outfile };
  } catch {
    return { args: ['--import', 'tsx', entry], cleanup: null };
  }
}

/** The extra file the disk-full test adds to a version: too big for the limit it sets. */
export function bigFile(size: number): Buffer {
  return Buffer.alloc(size, 0x5a);
}
