import { mkdir, readdir, readlink, rename, rm, symlink, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { formatModelId, parseModelId, type ModelId } from '../../protocol/ids.js';
import { fsyncDir } from '../fs/atomic-file.js';
import { randomHex } from '../fs/lazy-crypto.js';

/**
 * Modes of what the store creates (docs/store.md, "Permissions"): only the agent's user and group
 * (the group that may use the socket, 0660) can read models. Folders are 0750 narrowed by the
 * agent's umask; files are exactly 0440: readable by the same two, and read-only because a
 * published version never changes (a version folder with a writable file would be a bug).
 */
export const DIR_MODE = 0o750;
export const FILE_MODE = 0o440;

/**
 * Paths of the models folder:
 *   <dir>/<owner>/<name>/versions/<v>/...   complete, verified, read-only files
 *   <dir>/<owner>/<name>/current            symlink -> versions/<v>
 *   <dir>/.outpost/{journal.json, staging/, trash/, blobs/}
 * `.outpost` cannot collide with an owner: model id parts start with a letter or digit.
 */
export class Layout {
  readonly meta: string;
  readonly journal: string;
  readonly staging: string;
  readonly trash: string;
  readonly blobs: string;

  constructor(readonly dir: string) {
    this.meta = join(dir, '.outpost');
    this.journal = join(this.meta, 'journal.json');
    this.staging = join(this.meta, 'staging');
    this.trash = join(this.meta, 'trash');
    this.blobs = join(this.meta, 'blobs');
  }

  async init(): Promise<void> {
    await Promise.all([this.staging, this.trash, this.blobs].map((d) => mkdir(d, { recursive: true, mode: DIR_MODE })));
  }

  modelDir(id: ModelId): string {
    return join(this.dir, id.owner, id.name);
  }

  versionsDir(id: ModelId): string {
    return join(this.modelDir(id), 'versions');
  }

  versionDir(id: ModelId, v: number): string {
    return join(this.versionsDir(id), String(v));
  }

  /** The version `current` points to, or null when there is none (or it is not ours). */
  async current(id: ModelId): Promise<number | null> {
    const target = await readlink(join(this.modelDir(id), 'current')).catch(() => null);
    const m = target ? /^versions\/([1-9]\d*)$/.exec(target) : null;
    return m ? Number(m[1]) : null;
  }

  /** Installed versions, ascending. */
  async versions(id: ModelId): Promise<number[]> {
    const names = await readdir(this.versionsDir(id)).catch(() => [] as string[]);
    return names
      .filter((n) => /^[1-9]\d*$/.test(n))
      .map(Number)
      .sort((a, b) => a - b);
  }

  /** Every model that has a folder, as `owner/name`. */
  async models(): Promise<string[]> {
    const out: string[] = [];
    const owners = (await readdir(this.dir).catch(() => [] as string[])).filter((o) => !o.startsWith('.'));
    // Read side by side: a start-up walks every model folder (agent start, docs/runtime.md).
    const names = await Promise.all(owners.map((o) => readdir(join(this.dir, o)).catch(() => [] as string[])));
    owners.forEach((owner, i) => {
      for (const name of names[i]) {
        try {
          out.push(formatModelId(parseModelId(`${owner}/${name}`)));
        } catch {
          // Not a model folder (a stray file or a name we never create): leave it alone.
        }
      }
    });
    return out.sort();
  }

  /** Atomic flip: a fresh symlink renamed over `current`, then the folder is fsynced. */
  async flip(id: ModelId, v: number): Promise<void> {
    const dir = this.modelDir(id);
    const tmp = join(dir, `current.tmp-${randomHex(4)}`);
    await symlink(`versions/${v}`, tmp);
    try {
      await rename(tmp, join(dir, 'current'));
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    await fsyncDir(dir);
  }

  /**
   * Deletes a folder without ever showing it half-deleted: one rename into trash (atomic), then
   * the slow recursive delete, which recover() finishes if it is interrupted.
   */
  async discard(path: string): Promise<void> {
    const dest = join(this.trash, randomHex(8));
    try {
      await rename(path, dest);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    await fsyncDir(dirname(path));
    await rm(dest, { recursive: true, force: true });
  }

  /** Leftovers of interrupted work: staging folders, trash, temporary `current` links. */
  async sweep(): Promise<void> {
    for (const d of [this.staging, this.trash]) {
      for (const n of await readdir(d).catch(() => [] as string[]))
        await rm(join(d, n), { recursive: true, force: true });
    }
    await Promise.all(
      (await this.models()).map(async (id) => {
        const dir = this.modelDir(parseModelId(id));
        for (const n of await readdir(dir).catch(() => [] as string[])) {
          if (n.startsWith('current.tmp-')) await unlink(join(dir, n)).catch(() => undefined);
        }
      }),
    );
  }
}
