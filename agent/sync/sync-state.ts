import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomicSync } from '../fs/atomic-file.js';

/**
 * What the reconciler must remember across restarts: the highest applied revision (so that a
 * replayed older document is refused after a reboot too, TUF's rollback protection) and the last
 * verified document (so that a device that boots without a broker keeps converging toward it).
 * One small JSON file, written atomically.
 */
export class SyncState {
  private revision: number | null = null;
  private document: string | null = null;

  constructor(private readonly path: string) {
    try {
      const v = JSON.parse(readFileSync(path, 'utf8')) as { revision?: unknown; document?: unknown };
      if (typeof v.revision === 'number' && Number.isSafeInteger(v.revision)) this.revision = v.revision;
      if (typeof v.document === 'string') this.document = v.document;
    } catch {
      // Missing or unreadable: start as a new device. A corrupt file is replaced on the next save.
    }
  }

  lastRevision(): number | null {
    return this.revision;
  }

  lastDocument(): string | null {
    return this.document;
  }

  /**
   * `resetFloor`: the floor came from a document by a key the root has since revoked (TUF's
   * fast-forward recovery), so the new document's revision replaces it instead of raising it.
   */
  save(revision: number, document: string, resetFloor = false): void {
    this.revision = resetFloor ? revision : Math.max(revision, this.revision ?? revision);
    this.document = document;
    mkdirSync(dirname(this.path), { recursive: true });
    writeFileAtomicSync(this.path, JSON.stringify({ revision: this.revision, document }), { mode: 0o600 });
  }
}
