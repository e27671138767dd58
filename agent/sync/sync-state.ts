import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomicSync } from '../fs/atomic-file.js';
import { isPin, type RollbackPin } from './rollback-pin.js';

/**
 * What the reconciler must remember across restarts: the highest applied revision (so that a
 * replayed older document is refused after a reboot too, TUF's rollback protection), the last
 * verified document (so that a device that boots without a broker keeps converging toward it) and
 * the rollback pins (a rollback command holds "until the desired state changes", and a restart
 * is not a change: without the pin the restarted agent would re-activate the version the operator
 * rolled back from). One small JSON file, written atomically.
 */
export class SyncState {
  private revision: number | null = null;
  private document: string | null = null;
  private pinned: RollbackPin[] = [];

  constructor(private readonly path: string) {
    try {
      const v = JSON.parse(readFileSync(path, 'utf8')) as { revision?: unknown; document?: unknown; pins?: unknown };
      if (typeof v.revision === 'number' && Number.isSafeInteger(v.revision)) this.revision = v.revision;
      if (typeof v.document === 'string') this.document = v.document;
      if (Array.isArray(v.pins)) this.pinned = v.pins.filter(isPin);
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

  /** The pins a rollback command set while the desired state was at `revision`. */
  pins(revision: number | null): readonly RollbackPin[] {
    return this.pinned.filter((p) => p.revision === revision);
  }

  /** Remembers a rollback pin (durably: the command's answer goes out after this returns). */
  pin(p: RollbackPin): void {
    this.pinned = [...this.pinned.filter((q) => !(q.model === p.model && q.version === p.version)), p];
    this.write();
  }

  /** Drops a model's pins (a version of it was activated again). */
  unpin(model: string): void {
    if (!this.pinned.some((p) => p.model === model)) return;
    this.pinned = this.pinned.filter((p) => p.model !== model);
    this.write();
  }

  /**
   * `resetFloor`: the floor came from a document by a key the root has since revoked (TUF's
   * fast-forward recovery), so the new document's revision replaces it instead of raising it.
   * A new document lifts the pins set under another revision.
   */
  save(revision: number, document: string, resetFloor = false): void {
    this.revision = resetFloor ? revision : Math.max(revision, this.revision ?? revision);
    this.document = document;
    this.pinned = this.pinned.filter((p) => p.revision === revision);
    this.write();
  }

  private write(): void {
    mkdirSync(dirname(this.path), { recursive: true });
    writeFileAtomicSync(
      this.path,
      JSON.stringify({ revision: this.revision, document: this.document, pins: this.pinned }),
      { mode: 0o600 },
    );
  }
}
