import type { Db } from '../db/types.js';

/**
 * The state every replica of one cloud must share and that is not catalog or fleet data: the
 * desired-state signing keys, the root chain and the device-credential key. It lives in the
 * database (table cluster_secrets) so that replicas on different hosts, each with its own
 * --data-dir, sign with the same keys; before, it was files in the data dir, and two data dirs
 * meant two clouds that devices would tell apart (docs/scale.md, "What replicas share").
 *
 * Names are the old files' paths relative to the data dir (`signing/desired.key`,
 * `signing/online/<keyid>.key`, `signing/roots/<N>.root.json`, `broker/device-credentials.key`),
 * so an old data dir imports one to one (import.ts). Rows are only added, never changed: a key is
 * named by its keyid and a root by its version, so "what changed" is "the rows after the version
 * I saw", and `head()` answers "did anything change" in one indexed read.
 *
 * What protects the private keys at rest is the database's access control, as the data dir's
 * file modes (0600) did before: whoever can read this table can sign desired states.
 */
export interface SecretRow {
  name: string;
  value: string;
  version: number;
}

export class ClusterSecrets {
  constructor(private readonly db: Db) {}

  /**
   * The value stored under `name`, creating it with `make()` when absent. Race-free across
   * replicas: the read, the insert (ON CONFLICT DO NOTHING) and the read back run under the
   * database's write lock, so of two replicas starting at once on an empty database the first
   * one's key wins and the second reads it.
   */
  ensure(name: string, make: () => string): { value: string; created: boolean } {
    return this.db
      .transaction(() => {
        const have = this.get(name);
        if (have !== null) return { value: have, created: false };
        this.insertLocked(name, make());
        return { value: this.get(name)!, created: true };
      })
      .immediate();
  }

  /** Adds `name` unless present; false when another writer had stored it (nothing changed then). */
  insert(name: string, value: string): boolean {
    return this.db.transaction(() => this.insertLocked(name, value)).immediate();
  }

  /**
   * Runs `fn` under the write lock with an `add` that inserts and reports whether it did: for
   * several rows that must appear together (a first root and its implied v1) or not at all.
   */
  atomically<T>(fn: (add: (name: string, value: string) => boolean) => T): T {
    return this.db.transaction(() => fn((n, v) => this.insertLocked(n, v))).immediate();
  }

  get(name: string): string | null {
    const row = this.db.prepare('SELECT value FROM cluster_secrets WHERE name = ?').get(name) as
      | { value: string }
      | undefined;
    return row?.value ?? null;
  }

  /** The newest version (0 when empty): a change anywhere in the table moves it. */
  head(): number {
    const row = this.db.prepare('SELECT MAX(version) AS v FROM cluster_secrets').get() as { v: number | null };
    return Number(row.v ?? 0);
  }

  /** Rows added after `version`, oldest first. */
  since(version: number): SecretRow[] {
    return (
      this.db
        .prepare('SELECT name, value, version FROM cluster_secrets WHERE version > ? ORDER BY version')
        .all(version) as SecretRow[]
    ).map((r) => ({ ...r, version: Number(r.version) }));
  }

  /** Call inside a write-locked transaction: the version is numbered from MAX under that lock. */
  private insertLocked(name: string, value: string): boolean {
    const next = this.head() + 1;
    const res = this.db
      .prepare(
        'INSERT INTO cluster_secrets (name, value, version, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING',
      )
      .run(name, value, next, new Date().toISOString());
    return res.changes === 1;
  }
}
