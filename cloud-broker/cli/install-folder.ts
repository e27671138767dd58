import { randomBytes } from 'node:crypto';
import { copyFile, link, mkdir, readdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { formatModelId, parseModelId } from '../../protocol/ids.js';
import type { VersionFile } from '../../protocol/manifest-types.js';
import { fsyncDir, hashFile, readIfExists } from './fs-util.js';

/**
 * The `./models` folder that `outpost app install` manages: which model folders it installed
 * (a marker file in each), files it can reuse instead of downloading, and folders it may delete.
 *
 * Invariant: only a folder holding our marker, whose marker names the folder's own id, is ever
 * deleted; anything else under ./models (a model copied by hand) is left as it is.
 */
export const MARKER = '.outpost-install.json';
export const STAGING = '.outpost-staging';

export interface Marker {
  id: string;
  version: number;
  files: VersionFile[];
}

export async function readMarker(folder: string): Promise<Marker | undefined> {
  const text = await readIfExists(join(folder, MARKER)).catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const m = JSON.parse(text) as Partial<Marker>;
    if (typeof m.id !== 'string' || typeof m.version !== 'number' || !Array.isArray(m.files)) return undefined;
    return m as Marker;
  } catch {
    return undefined;
  }
}

/**
 * Copies into `dest` a file of the currently installed version with the same content, if any,
 * after re-hashing it (the user may have edited it). Hard link first (same file system, no
 * copy), else a copy. Returns true when `dest` now holds the verified bytes.
 */
export async function reuseInstalled(
  oldFolder: string,
  old: Marker | undefined,
  f: VersionFile,
  dest: string,
): Promise<boolean> {
  const same = old?.files.find((o) => o.sha256 === f.sha256 && o.size === f.size);
  if (!same) return false;
  const src = join(oldFolder, same.path);
  const st = await stat(src).catch(() => undefined);
  if (!st?.isFile() || st.size !== f.size || (await hashFile(src)).sha256 !== f.sha256) return false;
  const tmp = `${dest}.${randomBytes(4).toString('hex')}.reuse`;
  try {
    await link(src, tmp).catch(() => copyFile(src, tmp));
    // A copy could race an edit of the source: check what landed before it counts.
    if ((await hashFile(tmp)).sha256 !== f.sha256) {
      await rm(tmp, { force: true });
      return false;
    }
    await rename(tmp, dest);
    return true;
  } catch {
    await rm(tmp, { force: true });
    return false;
  }
}

export interface Removed {
  id: string;
  version: number;
  path: string;
}

/**
 * Deletes the folders of models that `app install` installed earlier and that the app no longer
 * lists. Each one is first renamed into the staging folder (one atomic step: the model is either
 * fully there or gone), then deleted; an owner folder left empty goes too. Folders without our
 * marker are not touched.
 */
export async function pruneRemoved(models: string, keep: ReadonlySet<string>): Promise<Removed[]> {
  const removed: Removed[] = [];
  const owners = await readdir(models, { withFileTypes: true }).catch(() => []);
  for (const o of owners) {
    if (!o.isDirectory() || o.name === STAGING) continue;
    const ownerDir = join(models, o.name);
    for (const n of await readdir(ownerDir, { withFileTypes: true })) {
      if (!n.isDirectory()) continue;
      let id: string;
      try {
        id = formatModelId(parseModelId(`${o.name}/${n.name}`));
      } catch {
        continue;
      }
      if (keep.has(id)) continue;
      const folder = join(ownerDir, n.name);
      const marker = await readMarker(folder);
      if (marker?.id !== id) continue;
      const trash = join(models, STAGING, o.name, `${n.name}.removed-${randomBytes(4).toString('hex')}`);
      await mkdir(join(models, STAGING, o.name), { recursive: true });
      await rename(folder, trash);
      await fsyncDir(ownerDir);
      await rm(trash, { recursive: true, force: true });
      removed.push({ id, version: marker.version, path: folder });
    }
    // rmdir fails on a non-empty folder, which is what we want.
    await rmdir(ownerDir).catch(() => undefined);
  }
  return removed;
}
