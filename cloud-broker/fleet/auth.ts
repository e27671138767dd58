import { createHash, timingSafeEqual } from 'node:crypto';
import { isDeviceId } from '../../protocol/topics.js';
import { hashToken } from '../auth/tokens.js';
import type { Authenticate } from '../broker/broker.js';
import type { Db } from '../db/open.js';

export interface ServiceCredentials {
  username: string;
  password: string;
}

/** The login cache's bounds (cloud-broker/limits.ts: broker.loginCacheTtlMs, broker.loginCacheMax). */
export interface LoginCacheSettings {
  /** How long a verified device login is trusted without asking the database again; 0: never. */
  ttlMs: number;
  /** Logins held at most; the oldest verification is dropped first. */
  max: number;
}

/** Device logins checked in one statement at most: the IN list stays well below any engine's bound. */
const BATCH = 500;

const digest = (s: string | Buffer): Buffer => createHash('sha256').update(s).digest();

interface Waiting {
  hash: string;
  username: string;
  resolve: (ok: boolean) => void;
  reject: (err: unknown) => void;
}

/**
 * The broker's authenticate for the embedded cloud: devices log in with username = device id and
 * password = their device token (stored hashed by cloud-broker/auth); the cloud's own publisher
 * logs in with a service credential. A removed device's tokens are revoked, so it fails here.
 *
 * Why a cache and a batch: on PostgreSQL every statement blocks the replica's event loop for a
 * round trip (docs/scale.md, "The database"), and a reconnect storm is thousands of CONNECTs in a
 * few seconds, each of which used to cost two (token, device row). Now the CONNECTs that arrive
 * in one event-loop turn are checked together in one statement (token joined with its live
 * device), and a verified login is kept in memory, by the token's sha256 (never the token), for
 * `ttlMs`, so the retries of a storm and a device's reconnects cost no statement at all.
 *
 * Revocation: `Fleet.remove` revokes in the database, then calls `forget` on this replica and,
 * through the brokers' shared message bus (Redis), on every other replica
 * (RunningBroker.revokeDevice), which also drops the device's live connections there. If that
 * message is lost (Redis down at that moment), a cached login still works for at most `ttlMs`
 * after it was verified: that is the bound docs/security.md states.
 */
export class BrokerLogins {
  private readonly cache = new Map<string, { deviceId: string; expiresAt: number }>();
  private readonly hashesOf = new Map<string, Set<string>>();
  private waiting: Waiting[] = [];
  private readonly serviceDigest: Buffer;
  /** Counters for tests and GET /v1/stats: logins answered from memory, and statements run. */
  readonly counts = { cached: 0, statements: 0 };

  constructor(
    private readonly db: Db,
    private readonly service: ServiceCredentials,
    private readonly settings: LoginCacheSettings,
    private readonly now: () => number = Date.now,
  ) {
    this.serviceDigest = digest(service.password);
  }

  readonly authenticate: Authenticate = async (username, password) => {
    if (username === this.service.username) {
      // Compare digests so the comparison is constant-time whatever the lengths.
      return timingSafeEqual(digest(password), this.serviceDigest) ? { kind: 'service', name: username } : null;
    }
    if (!isDeviceId(username)) return null;
    const token = password.toString('utf8');
    if (token.length === 0 || token.length > 512) return null;
    const hash = hashToken(token);
    const hit = this.cache.get(hash);
    if (hit && hit.expiresAt > this.now()) {
      if (hit.deviceId !== username) return null;
      this.counts.cached++;
      return { kind: 'device', deviceId: username };
    }
    const ok = await new Promise<boolean>((resolve, reject) => {
      this.waiting.push({ hash, username, resolve, reject });
      if (this.waiting.length === 1) setImmediate(() => this.check());
    });
    return ok ? { kind: 'device', deviceId: username } : null;
  };

  /** Drops the device's cached logins (it was removed, here or on another replica). */
  forget(deviceId: string): void {
    for (const h of this.hashesOf.get(deviceId) ?? []) this.cache.delete(h);
    this.hashesOf.delete(deviceId);
  }

  get size(): number {
    return this.cache.size;
  }

  /** Checks every login that arrived in this turn, BATCH at a time, against the database. */
  private check(): void {
    const all = this.waiting;
    this.waiting = [];
    for (let i = 0; i < all.length; i += BATCH) {
      const part = all.slice(i, i + BATCH);
      let valid: Map<string, string>;
      try {
        valid = this.lookup([...new Set(part.map((w) => w.hash))]);
      } catch (err) {
        for (const w of part) w.reject(err);
        continue;
      }
      for (const w of part) {
        const subject = valid.get(w.hash);
        const ok = subject === w.username;
        if (ok) this.remember(w.hash, subject);
        w.resolve(ok);
      }
    }
  }

  /** Token hash -> device id, for the hashes that are live device tokens of live devices. */
  private lookup(hashes: string[]): Map<string, string> {
    this.counts.statements++;
    const rows = this.db
      .prepare(
        `SELECT t.hash, t.subject FROM tokens t JOIN devices d ON d.id = t.subject
         WHERE t.kind = 'device' AND t.revoked_at IS NULL AND d.removed_at IS NULL
           AND t.hash IN (${hashes.map(() => '?').join(', ')})`,
      )
      .all(...hashes) as { hash: string; subject: string }[];
    // Matched by hash: its timing can reveal hashes of guesses at most, never a stored token.
    return new Map(rows.map((r) => [r.hash, r.subject]));
  }

  private remember(hash: string, deviceId: string): void {
    if (this.settings.ttlMs <= 0 || this.settings.max <= 0) return;
    // Re-verified: it moves to the newest end, so eviction drops the oldest verification.
    this.cache.delete(hash);
    while (this.cache.size >= this.settings.max) {
      const [oldest, entry] = this.cache.entries().next().value as [string, { deviceId: string }];
      this.cache.delete(oldest);
      this.hashesOf.get(entry.deviceId)?.delete(oldest);
      if (this.hashesOf.get(entry.deviceId)?.size === 0) this.hashesOf.delete(entry.deviceId);
    }
    this.cache.set(hash, { deviceId, expiresAt: this.now() + this.settings.ttlMs });
    let set = this.hashesOf.get(deviceId);
    if (!set) this.hashesOf.set(deviceId, (set = new Set()));
    set.add(hash);
  }
}

/** The authenticate function alone (tests, and callers with no cache settings): batched, no cache. */
export function brokerAuthenticator(db: Db, service: ServiceCredentials): Authenticate {
  return new BrokerLogins(db, service, { ttlMs: 0, max: 0 }).authenticate;
}
