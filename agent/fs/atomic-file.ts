import { closeSync, constants, fchmodSync, fsyncSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomHex } from './lazy-crypto.js';

/**
 * The one implementation of "temp file, fsync, rename, fsync the directory" for the whole
 * package. The agent cannot import cloud-broker/, so it lives here; the cloud side imports it too
 * (as it already imports agent/fetch for `app install`) rather than keeping a second copy, because
 * durability code that differs between two copies is a bug that only a power cut shows.
 *
 * Invariants: readers see the old content or the new one, never a mix or a truncation; the temp
 * file sits in the target's folder (rename(2) is atomic only within one filesystem), has a fresh
 * random name opened with O_EXCL (no stale leftover or concurrent writer is reused) and is removed
 * when any step before the rename fails.
 */
export interface AtomicWriteOptions {
  /**
   * Exact permission bits, set with fchmod before the rename because the mode given to open() is
   * narrowed by the umask (secrets must be exactly 0600, unit files exactly 0644). Omitted: 0644
   * narrowed by the umask, as for any new file.
   */
  mode?: number;
}

const DEFAULT_MODE = 0o644;
const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY;

function tempPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomHex(6)}.tmp`);
}

/** fsyncs the directory `dir` itself, so that a rename or unlink inside it survives a power cut. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, DIR_FLAGS);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, DIR_FLAGS);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes `data` to `path` atomically and durably (see the invariants above). */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  opts: AtomicWriteOptions = {},
): Promise<void> {
  const tmp = tempPath(path);
  const fh = await open(tmp, 'wx', opts.mode ?? DEFAULT_MODE);
  try {
    try {
      await fh.writeFile(data);
      if (opts.mode !== undefined) await fh.chmod(opts.mode);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dirname(path));
}

/** The same for code that must not yield (small state files written from synchronous paths). */
export function writeFileAtomicSync(path: string, data: string | Uint8Array, opts: AtomicWriteOptions = {}): void {
  const tmp = tempPath(path);
  const fd = openSync(tmp, 'wx', opts.mode ?? DEFAULT_MODE);
  try {
    try {
      writeFileSync(fd, data);
      if (opts.mode !== undefined) fchmodSync(fd, opts.mode);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    try {
      rmSync(tmp, { force: true });
    } catch {
      /* the original error matters more */
    }
    throw err;
  }
  fsyncDirSync(dirname(path));
}
