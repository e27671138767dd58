import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { OutpostError } from '../../protocol/errors/index.js';
import { moduleLogger, type Logger } from '../../protocol/log.js';
import { FLEET_LEADER, LeaseStore, type LeaseRow } from '../db/lease.js';
import type { Db } from '../db/open.js';

/** How long a lease lasts and how often its holder renews it (docs/scale.md, "Run-once work"). */
export interface LeaseSettings {
  ttlMs: number;
  renewMs: number;
}

export const DEFAULT_LEASE: LeaseSettings = Object.freeze({ ttlMs: 10_000, renewMs: 3_000 });

const ENV = { ttlMs: 'OUTPOST_CLOUD_LEASE_TTL_MS', renewMs: 'OUTPOST_CLOUD_LEASE_RENEW_MS' } as const;

/**
 * The defaults, then `OUTPOST_CLOUD_LEASE_TTL_MS` / `OUTPOST_CLOUD_LEASE_RENEW_MS`, then `input`.
 * A holder must be able to miss a renewal and still hold the lease, so the TTL is at least twice
 * the renewal period.
 */
export function resolveLeaseSettings(input: Partial<LeaseSettings> = {}, env: NodeJS.ProcessEnv = {}): LeaseSettings {
  const out = { ...DEFAULT_LEASE };
  for (const key of ['ttlMs', 'renewMs'] as const) {
    const raw = input[key] ?? (env[ENV[key]] ? Number(env[ENV[key]]) : undefined);
    if (raw === undefined) continue;
    if (!Number.isSafeInteger(raw) || raw < 10)
      throw new OutpostError('USAGE', `${ENV[key]} (lease ${key}) must be an integer of at least 10 ms, got ${raw}`, {
        key,
      });
    out[key] = raw;
  }
  if (out.ttlMs < 2 * out.renewMs)
    throw new OutpostError(
      'USAGE',
      `the lease TTL (${out.ttlMs} ms) must be at least twice its renewal period (${out.renewMs} ms); raise ${ENV.ttlMs} or lower ${ENV.renewMs}`,
      { ttlMs: out.ttlMs, renewMs: out.renewMs },
    );
  return out;
}

/** A name for this process among the replicas: host, pid and a random part (a pid is reused after a restart). */
export function newReplicaId(): string {
  return `${os.hostname()}/${process.pid}/${randomBytes(3).toString('hex')}`;
}

/** Who leads, as the database says (GET /v1/health). */
export interface LeaderInfo {
  holder: string | null;
  epoch: number;
  expiresAt: string | null;
}

export type LeadershipListener = (leader: boolean, epoch: number) => void;

export interface LeadershipOptions {
  db: Db;
  replica: string;
  settings: LeaseSettings;
  log: Logger;
  now?: () => number;
}

/**
 * This replica's side of the fleet-leader lease: it claims the lease at start and every renewal
 * period, tells its listeners when it becomes or stops being the leader, and fences the leader's
 * writes. Being the leader in memory is a hint for what to start; only `fence()`, inside the
 * transaction of the work, is proof (a process paused past its TTL still believes it leads until
 * its next renewal runs).
 */
export class Leadership {
  private readonly leases: LeaseStore;
  private readonly log: Logger;
  private readonly now: () => number;
  private held: LeaseRow | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly listeners = new Set<LeadershipListener>();

  constructor(private readonly o: LeadershipOptions) {
    this.leases = new LeaseStore(o.db);
    this.log = moduleLogger(o.log, 'leadership');
    this.now = o.now ?? Date.now;
  }

  get replica(): string {
    return this.o.replica;
  }

  /** Held and not lapsed by this replica's clock. */
  get isLeader(): boolean {
    return this.held !== null && this.now() < this.held.expiresAt;
  }

  /** Called with (true, epoch) on election and (false, epoch) when the lease is lost or given up. */
  onChange(fn: LeadershipListener): () => void {
    this.listeners.add(fn);
    return () => {
      this.listeners.delete(fn);
    };
  }

  start(): void {
    if (this.timer) return;
    this.renew();
    this.timer = setInterval(() => this.renew(), this.o.settings.renewMs);
    this.timer.unref();
  }

  /** No more claims (the first step of a shutdown: no election may begin while the rest stops). */
  stopRenewing(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** Stops renewing and gives the lease up, so another replica takes over without waiting for the TTL. */
  stop(): void {
    this.stopRenewing();
    const h = this.held;
    if (!h) return;
    this.lose(h, 'stopping');
    try {
      this.leases.release(FLEET_LEADER, this.o.replica, h.epoch);
    } catch (err) {
      this.log.warn({ err }, 'could not release the lease; the other replicas take over when it lapses');
    }
  }

  /** One claim: take, renew, or notice the loss. Also what the timer runs. */
  renew(): void {
    const now = this.now();
    let got: LeaseRow | null;
    try {
      got = this.leases.claim(FLEET_LEADER, this.o.replica, this.o.settings.ttlMs, now);
    } catch (err) {
      // A busy or unreachable database: keep leading until the lease lapses by our own clock.
      this.log.warn({ err }, 'could not renew the fleet-leader lease; retrying');
      if (this.held && now >= this.held.expiresAt) this.lose(this.held, 'lapsed while the database did not answer');
      return;
    }
    const h = this.held;
    if (h && got && got.epoch === h.epoch) {
      this.held = got;
      return;
    }
    if (h) this.lose(h, got ? 'lapsed before it was renewed; taken again' : 'taken by another replica');
    if (!got) return;
    this.held = got;
    this.log.info({ replica: this.o.replica, epoch: got.epoch }, 'this replica is now the fleet leader');
    this.emit(true, got.epoch);
  }

  /**
   * True when this replica still holds the lease at the epoch it was elected with; call it inside
   * the transaction of leader-only work, before that work writes (LeaseStore.fence).
   */
  fence(): boolean {
    const h = this.held;
    return h !== null && this.leases.fence(FLEET_LEADER, this.o.replica, h.epoch);
  }

  /** The lease as the database has it now. */
  leader(): LeaderInfo {
    const r = this.leases.read(FLEET_LEADER);
    const live = r !== null && r.holder !== '' && r.expiresAt > this.now();
    return {
      holder: live ? r.holder : null,
      epoch: r?.epoch ?? 0,
      expiresAt: live ? new Date(r.expiresAt).toISOString() : null,
    };
  }

  private lose(h: LeaseRow, why: string): void {
    this.held = null;
    let now: LeaderInfo | null = null;
    try {
      now = this.leader();
    } catch {
      // Only for the log line.
    }
    const fields = { replica: this.o.replica, epoch: h.epoch, why, leader: now?.holder ?? null };
    if (why === 'stopping') this.log.info(fields, 'no longer the fleet leader');
    else this.log.warn(fields, 'no longer the fleet leader');
    this.emit(false, h.epoch);
  }

  private emit(leader: boolean, epoch: number): void {
    for (const fn of this.listeners) {
      try {
        fn(leader, epoch);
      } catch (err) {
        this.log.error({ err }, 'a leadership listener failed');
      }
    }
  }
}
