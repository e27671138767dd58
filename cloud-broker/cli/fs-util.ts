import { open, realpath, stat } from 'node:fs/promises';
import { relative, resolve, sep } from 'node:path';
import { OutpostError } from '../../protocol/errors/index.js';

// One atomic writer and one file hasher for the whole package (why in agent/: see atomic-file.ts).
export { fsyncDir, writeFileAtomic } from '../../agent/fs/atomic-file.js';
export { hashFile } from '../../agent/fs/hash-file.js';

/**
 * Resolves a manifest path against the model folder and checks, on the real file system, that it
 * is a regular file whose real path (symlinks followed) stays inside the folder.
 */
export async function resolveInside(root: string, rel: string, label: string): Promise<{ abs: string; size: number }> {
  const abs = resolve(root, rel);
  let real: string;
  try {
    real = await realpath(abs);
  } catch {
    throw new OutpostError(
      'MODEL_FILE_MISSING',
      `${label} "${rel}" does not exist in ${root}; copy the file into the model folder or fix the path`,
      { key: label, path: rel },
    );
  }
  const realRoot = await realpath(root);
  const r = relative(realRoot, real);
  if (r === '' || r.startsWith('..' + sep) || r === '..' || resolve(realRoot, r) !== real) {
    throw new OutpostError(
      'MODEL_PATH_OUTSIDE',
      `${label} "${rel}" resolves to ${real}, outside the model folder ${realRoot}; copy the file into the folder`,
      { key: label, path: rel },
    );
  }
  const st = await stat(real);
  if (!st.isFile()) {
    throw new OutpostError('MODEL_FILE_MISSING', `${label} "${rel}" is not a regular file`, { key: label, path: rel });
  }
  return { abs: real, size: st.size };
}

export async function readIfExists(path: string): Promise<string | undefined> {
  try {
    const fh = await open(path, 'r');
    try {
      return await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new OutpostError('IO_ERROR', `cannot read ${path}: ${(err as Error).message}`, { path });
  }
}
