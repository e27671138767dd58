import type { Db } from './open.js';

/** The lease the fleet's run-once work is held under (cloud-broker/fleet/leadership.ts). */
export const FLEET_LEADER = 'fleet-leader';

export interface LeaseRow {
  name: string;
  /** '' when nobody ever held it. */
  holder: string;
  /** The fencing token: grows by one each time the lease changes hands (or is taken again after it lapsed). */
  epoch: number;
  acquiredAt: number;
  expiresAt: number;
}

interface Raw {
  name: string;
  holder: string;
  epoch: number;
  acquired_at: number;
  expires_at: number;
}

const row = (r: Raw): LeaseRow => ({
  name: r.name,
  holder: r.holder,
  epoch: r.epoch,
  acquiredAt: r.acquired_at,
  expiresAt: r.expires_at,
});

/**
 * A lease in the database, for work that must run on one replica at a time. Every statement here
 * is plain SQL that SQLite (3.35+, for RETURNING) and PostgreSQL both run unchanged, with `?`
 * placeholders. Times are passed in (milliseconds): the callers' clocks decide expiry, so
 * replicas need clocks that agree to well within the TTL.
 *
 * Why a row and not PostgreSQL advisory locks: an advisory lock lives as long as one database
 * session, which a pool or a network blip ends without the holder noticing, and SQLite has none;
 * a row with an expiry and an epoch works the same on both and gives a fencing token.
 */
export class LeaseStore {
  constructor(private readonly db: Db) {}

  /**
   * Takes the lease, or renews it, in one conditional UPDATE: it succeeds when `holder` holds it
   * or when it has lapsed. Taking it from someone else, or again after it lapsed, bumps the epoch
   * (so work begun under the old epoch is fenced out); renewing a live lease keeps it. Returns the
   * row when `holder` holds the lease afterwards, else null.
   */
  claim(name: string, holder: string, ttlMs: number, now: number): LeaseRow | null {
    const r = this.db
      .prepare(
        `UPDATE leases SET
           epoch = CASE WHEN holder = ? AND expires_at > ? THEN epoch ELSE epoch + 1 END,
           acquired_at = CASE WHEN holder = ? AND expires_at > ? THEN acquired_at ELSE ? END,
           holder = ?,
           expires_at = ?
         WHERE name = ? AND (holder = ? OR expires_at <= ?)
         RETURNING name, holder, epoch, acquired_at, expires_at`,
      )
      .get(holder, now, holder, now, now, holder, now + ttlMs, name, holder, now) as Raw | undefined;
    return r ? row(r) : null;
  }

  /** Gives the lease up at once (a clean shutdown), so another replica need not wait for it to lapse. */
  release(name: string, holder: string, epoch: number): boolean {
    return (
      this.db
        .prepare('UPDATE leases SET expires_at = 0 WHERE name = ? AND holder = ? AND epoch = ?')
        .run(name, holder, epoch).changes === 1
    );
  }

  read(name: string): LeaseRow | null {
    const r = this.db
      .prepare('SELECT name, holder, epoch, acquired_at, expires_at FROM leases WHERE name = ?')
      .get(name) as Raw | undefined;
    return r ? row(r) : null;
  }

  /**
   * Call inside the transaction of the work the lease guards, before its writes: true when
   * `holder` still holds `epoch`. It is a write (of nothing), so it locks the row until the
   * transaction ends (SQLite: the database's write lock; PostgreSQL: the row lock): a takeover
   * waits for this transaction, and this transaction cannot commit after a takeover. Expiry is
   * not checked: as long as the epoch is unchanged, nobody else has begun work under the lease.
   */
  fence(name: string, holder: string, epoch: number): boolean {
    return (
      this.db
        .prepare('UPDATE leases SET epoch = epoch WHERE name = ? AND holder = ? AND epoch = ?')
        .run(name, holder, epoch).changes === 1
    );
  }
}
