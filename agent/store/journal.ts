import { readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { OutpostError } from '../../protocol/errors/index.js';
import type { Logger } from '../../protocol/log.js';
import { fsyncDir, writeFileAtomic } from '../fs/atomic-file.js';

/**
 * The store's intent log: at most one entry, written (atomically) before an install touches the
 * models folder and removed after it is finished or undone. `recover()` reads it after a crash.
 * An install needs no more than this because each of its visible steps is a single rename:
 * staging -> versions/<v> and current.tmp -> current. The entry says which version to take
 * away again if the flip to it never happened.
 */
export interface InstallIntent {
  v: 1;
  op: 'install';
  id: string;
  version: number;
  /** Folder name under .outpost/staging. */
  staging: string;
  /** versions/<v> existed before this install started (so undo must keep it). */
  preexisting: boolean;
  startedAt: string;
}

export type JournalEntry = InstallIntent;

export async function readJournal(path: string, log: Logger): Promise<JournalEntry | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    const j = JSON.parse(text) as Partial<JournalEntry>;
    if (
      j.v === 1 &&
      j.op === 'install' &&
      typeof j.id === 'string' &&
      Number.isSafeInteger(j.version) &&
      typeof j.staging === 'string' &&
      !j.staging.includes('/') &&
      typeof j.preexisting === 'boolean'
    ) {
      return j as JournalEntry;
    }
    throw new Error('unexpected shape');
  } catch (err) {
    // Atomic writes make this near impossible; keep the evidence and recover from the folder itself.
    const e = new OutpostError(
      'STORE_JOURNAL_INVALID',
      `store journal ${path} is unreadable (${(err as Error).message}); moved aside to journal.json.bad`,
      { path },
    );
    log.error({ err: e, code: e.code }, e.message);
    await rename(path, `${path}.bad`).catch(() => undefined);
    return null;
  }
}

export function writeJournal(path: string, entry: JournalEntry): Promise<void> {
  return writeFileAtomic(path, JSON.stringify(entry, null, 2) + '\n');
}

export async function clearJournal(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  await fsyncDir(dirname(path));
}
