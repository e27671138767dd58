import { constants } from 'node:fs';
import { copyFile, link } from 'node:fs/promises';

export function isNoSpace(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG';
}

/**
 * Makes `dest` hold the same bytes as `src`: a hard link when both are on one filesystem (no
 * space used, and the link count tells GC that something still uses the blob), else a copy.
 * `dest` must not exist.
 */
export async function linkOrCopy(src: string, dest: string): Promise<'linked' | 'copied'> {
  try {
    await link(src, dest);
    return 'linked';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EMLINK') throw err;
  }
  await copyFile(src, dest, constants.COPYFILE_EXCL);
  return 'copied';
}
