import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openDb, type Db } from '../../cloud-broker/db/index.js';
import { FLEET_LEADER, LeaseStore } from '../../cloud-broker/db/lease.js';
import type { SqliteDb } from '../../cloud-broker/db/sqlite.js';
import { Leadership, resolveLeaseSettings } from '../../cloud-broker/fleet/leadership.js';
import { FleetStore } from '../../cloud-broker/fleet/store.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { silentLogger } from '../../protocol/log.js';
import { testDatabase, testEngine } from '../helpers/test-db.js';
import { useTempDir } from '../helpers/temp-dir.js';

// Two connections to one database stand for two replicas (two processes share a SQLite file, or a
// PostgreSQL database, the same way); their clocks are explicit so that expiry is decided by the
// test, not by waiting. Runs on the test engine (npm run test:pg for PostgreSQL).
const tmp = useTempDir('outpost-lease-');
const TTL = 10_000;
const settings = { ttlMs: TTL, renewMs: 3_000 };

async function twoReplicas(): Promise<[Db, Db]> {
  const target = (await testDatabase()) ?? join(tmp.dir, 'cloud.db');
  return [openDb(target), openDb(target)];
}

function replica(db: Db, name: string, clock: { t: number }) {
  const changes: string[] = [];
  const l = new Leadership({ db, replica: name, settings, log: silentLogger, now: () => clock.t });
  l.onChange((leader, epoch) => changes.push(`${leader ? 'elected' : 'deposed'}@${epoch}`));
  return { l, changes };
}

describe('the lease row', () => {
  it('one holder at a time; renewal keeps the epoch; a lapsed lease is taken with a new epoch', async () => {
    const [a, b] = await twoReplicas();
    const la = new LeaseStore(a);
    const lb = new LeaseStore(b);
    const first = la.claim(FLEET_LEADER, 'A', TTL, 1_000);
    expect(first).toMatchObject({ holder: 'A', epoch: 1, acquiredAt: 1_000, expiresAt: 11_000 });
    expect(lb.claim(FLEET_LEADER, 'B', TTL, 5_000)).toBeNull();
    expect(la.claim(FLEET_LEADER, 'A', TTL, 5_000)).toMatchObject({ epoch: 1, acquiredAt: 1_000, expiresAt: 15_000 });
    // Not before it lapses, then at once.
    expect(lb.claim(FLEET_LEADER, 'B', TTL, 14_999)).toBeNull();
    expect(lb.claim(FLEET_LEADER, 'B', TTL, 15_000)).toMatchObject({ holder: 'B', epoch: 2, acquiredAt: 15_000 });
    expect(la.claim(FLEET_LEADER, 'A', TTL, 15_001)).toBeNull();
    expect(la.fence(FLEET_LEADER, 'A', 1)).toBe(false);
    expect(lb.fence(FLEET_LEADER, 'B', 2)).toBe(true);
    // A holder that lets its own lease lapse takes it again under a new epoch: its old work is fenced out.
    expect(lb.claim(FLEET_LEADER, 'B', TTL, 40_000)).toMatchObject({ holder: 'B', epoch: 3 });
    expect(lb.fence(FLEET_LEADER, 'B', 2)).toBe(false);
    // Released: the other takes it without waiting for the TTL.
    expect(lb.release(FLEET_LEADER, 'B', 3)).toBe(true);
    expect(la.claim(FLEET_LEADER, 'A', TTL, 40_001)).toMatchObject({ holder: 'A', epoch: 4 });
    a.close();
    b.close();
  });

  // B is a second connection that gives up at once where it would wait for a lock, so the
  // moment it would have slipped in is an error the test sees: SQLite's busy_timeout 0 answers
  // SQLITE_BUSY (A's transaction holds the database's write lock); on PostgreSQL, B's own session
  // (a second bridge thread and server backend) with a 300 ms lock and statement timeout answers
  // CLOUD_DB_UNAVAILABLE "canceling statement due to ... timeout" (A's fence holds the row lock;
  // both timeouts are the same setting, so either may fire). The same connection's claim goes
  // through at once after A commits, so the wait was for A's transaction, not a slow server.
  // Without the short timeout B's claim would block this thread until A committed, and A's commit
  // runs on this same thread after it: the wait itself cannot be watched from one thread, its
  // refusal can.
  async function impatientPair(): Promise<[Db, Db, (err: unknown) => void]> {
    if (testEngine() === 'sqlite') {
      const [a, b] = await twoReplicas();
      (b as SqliteDb).raw.pragma('busy_timeout = 0');
      return [a, b, (err) => expect((err as { code?: string } | null)?.code).toBe('SQLITE_BUSY')];
    }
    const url = (await testDatabase())!;
    return [
      openDb(url),
      openDb(url, undefined, { timeoutMs: 300 }),
      (err) => {
        expect(err).toBeInstanceOf(OutpostError);
        expect((err as OutpostError).code).toBe('CLOUD_DB_UNAVAILABLE');
        expect((err as Error).message).toMatch(/canceling statement due to (lock|statement) timeout/);
      },
    ];
  }

  it('a takeover waits for the fenced transaction of the holder, and cannot slip in before its commit', async () => {
    const [a, b, expectRefused] = await impatientPair();
    const la = new LeaseStore(a);
    const lb = new LeaseStore(b);
    la.claim(FLEET_LEADER, 'A', TTL, 1_000);
    let during: unknown = null;
    a.transaction(() => {
      expect(la.fence(FLEET_LEADER, 'A', 1)).toBe(true);
      // The lease has lapsed by B's clock, but A's transaction holds the row.
      try {
        lb.claim(FLEET_LEADER, 'B', TTL, 60_000);
      } catch (err) {
        during = err;
      }
      // Still A's, inside A's transaction: B changed nothing.
      expect(la.read(FLEET_LEADER)).toMatchObject({ holder: 'A', epoch: 1 });
    })();
    expectRefused(during);
    expect(lb.claim(FLEET_LEADER, 'B', TTL, 60_000)).toMatchObject({ holder: 'B', epoch: 2 });
    // And A's late fence, after the takeover, fails: its work cannot commit under the old epoch.
    expect(la.fence(FLEET_LEADER, 'A', 1)).toBe(false);
    a.close();
    b.close();
  });
});

describe('leadership between two replicas', () => {
  it('elects one, hands over when the leader stops, and a paused leader is fenced out', async () => {
    const [a, b] = await twoReplicas();
    const clock = { t: 1_000 };
    const paused = { t: 1_000 };
    const A = replica(a, 'A', paused);
    const B = replica(b, 'B', clock);
    A.l.renew();
    B.l.renew();
    expect([A.l.isLeader, B.l.isLeader]).toEqual([true, false]);
    expect(B.l.leader()).toMatchObject({ holder: 'A', epoch: 1 });

    // A stops getting CPU (its clock and timers stand still); B's lease attempts go on.
    clock.t = 11_000;
    B.l.renew();
    expect(B.l.isLeader).toBe(true);
    expect(B.changes).toEqual(['elected@2']);
    // A still believes it leads by its own clock: its in-memory state is a hint, the fence is proof.
    expect(A.l.isLeader).toBe(true);
    expect(A.l.fence()).toBe(false);
    const store = new FleetStore(a);
    store.upsertDevice('dev-1', []);
    store.fence = () => A.l.fence();
    store.saveReported('dev-1', '{"n":1}', 'now');
    store.flushReports();
    expect(store.reportedOf('dev-1')).toBeNull();
    // A wakes up and renews: it learns it lost.
    paused.t = 11_001;
    A.l.renew();
    expect(A.changes).toEqual(['elected@1', 'deposed@1']);
    expect(A.l.isLeader).toBe(false);

    // B stops cleanly: A takes over at its next renewal, long before B's TTL would lapse.
    B.l.stop();
    expect(B.changes).toEqual(['elected@2', 'deposed@2']);
    A.l.renew();
    expect(A.changes.at(-1)).toBe('elected@3');
    store.fence = () => A.l.fence();
    store.saveReported('dev-1', '{"n":2}', 'now');
    store.flushReports();
    expect(store.reportedOf('dev-1')).toBe('{"n":2}');
    A.l.stop();
    a.close();
    b.close();
  });
});

describe('lease settings', () => {
  it('defaults to 10 s renewed every 3 s; the environment and the caller override; a TTL under two renewals is refused', () => {
    expect(resolveLeaseSettings()).toEqual({ ttlMs: 10_000, renewMs: 3_000 });
    expect(
      resolveLeaseSettings({}, { OUTPOST_CLOUD_LEASE_TTL_MS: '2000', OUTPOST_CLOUD_LEASE_RENEW_MS: '500' }),
    ).toEqual({ ttlMs: 2_000, renewMs: 500 });
    expect(resolveLeaseSettings({ ttlMs: 8_000 }, { OUTPOST_CLOUD_LEASE_TTL_MS: '2000' })).toEqual({
      ttlMs: 8_000,
      renewMs: 3_000,
    });
    expect(() => resolveLeaseSettings({ ttlMs: 5_000 })).toThrow(/at least twice/);
    expect(() => resolveLeaseSettings({}, { OUTPOST_CLOUD_LEASE_TTL_MS: 'soon' })).toThrow(
      /OUTPOST_CLOUD_LEASE_TTL_MS/,
    );
  });
});
