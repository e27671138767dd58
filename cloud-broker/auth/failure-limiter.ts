import { createHash } from 'node:crypto';

/**
 * Counts failed authentications per source address and per credential in fixed windows, and
 * says when a key is blocked (docs/security.md, "Bounded abuse"). Used by the HTTP API (a wrong
 * bearer token) and the MQTT broker (a wrong device password): without it 2,000 guesses a second
 * were all answered, with no log line.
 *
 * - A key is blocked once it has `maxFailures` failures inside its window, until the window ends;
 *   while blocked every attempt from it is refused before the credential is even checked, so a
 *   blocked guesser learns nothing, not even with the right token.
 * - Successful authentications are not counted: the limit never slows a working client, only
 *   one that keeps failing.
 * - Memory is bounded: at most `maxKeys` keys per table; when full, the oldest window is dropped
 *   (Map iteration order is insertion order), so a flood of distinct addresses costs at most
 *   `maxKeys` small entries. Dropping a key can only let an attacker retry sooner, never block
 *   a client that did nothing.
 * - Credentials are keyed by a short sha256, never the secret itself, so neither memory nor logs
 *   hold a guessed token.
 */
export interface FailureLimits {
  /** Failures per source address within one window before it is refused. */
  perSource: number;
  /** Failures per credential (token, or MQTT username) within one window. */
  perCredential: number;
  windowMs: number;
  /** Keys kept per table (sources, credentials). */
  maxKeys: number;
}

export const DEFAULT_FAILURE_LIMITS: FailureLimits = Object.freeze({
  perSource: 30,
  perCredential: 10,
  windowMs: 60_000,
  maxKeys: 10_000,
});

interface Entry {
  start: number;
  failures: number;
  /** The warn line is written once per window, when the key becomes blocked. */
  warned: boolean;
}

export interface Blocked {
  /** Which key tripped: the address or the credential's fingerprint. */
  by: 'source' | 'credential';
  retryAfterSeconds: number;
}

/** A short, non-reversible label for a credential, safe in logs (first 12 hex of sha256). */
export function fingerprint(credential: string): string {
  return createHash('sha256').update(credential, 'utf8').digest('hex').slice(0, 12);
}

class WindowTable {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly limit: number,
    private readonly opts: FailureLimits,
  ) {}

  private live(key: string, now: number): Entry | undefined {
    const e = this.entries.get(key);
    if (e && now - e.start >= this.opts.windowMs) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }

  retryAfter(key: string, now: number): number | null {
    const e = this.live(key, now);
    if (!e || e.failures < this.limit) return null;
    return Math.max(1, Math.ceil((e.start + this.opts.windowMs - now) / 1000));
  }

  /** Adds a failure; returns true the first time the key crosses its limit in this window. */
  fail(key: string, now: number): boolean {
    let e = this.live(key, now);
    if (!e) {
      while (this.entries.size >= this.opts.maxKeys) {
        const oldest = this.entries.keys().next().value as string;
        this.entries.delete(oldest);
      }
      e = { start: now, failures: 0, warned: false };
      this.entries.set(key, e);
    }
    e.failures++;
    if (e.failures >= this.limit && !e.warned) {
      e.warned = true;
      return true;
    }
    return false;
  }

  get size(): number {
    return this.entries.size;
  }
}

export class FailureLimiter {
  readonly limits: FailureLimits;
  private readonly sources: WindowTable;
  private readonly credentials: WindowTable;

  constructor(
    limits: Partial<FailureLimits> = {},
    private readonly now: () => number = Date.now,
  ) {
    this.limits = { ...DEFAULT_FAILURE_LIMITS, ...limits };
    this.sources = new WindowTable(this.limits.perSource, this.limits);
    this.credentials = new WindowTable(this.limits.perCredential, this.limits);
  }

  /** Null when the attempt may be checked; otherwise why it is refused and for how long. */
  check(source: string, credential: string | undefined): Blocked | null {
    const t = this.now();
    const s = this.sources.retryAfter(source, t);
    if (s !== null) return { by: 'source', retryAfterSeconds: s };
    if (credential !== undefined) {
      const c = this.credentials.retryAfter(fingerprint(credential), t);
      if (c !== null) return { by: 'credential', retryAfterSeconds: c };
    }
    return null;
  }

  /**
   * Records a failed attempt. Returns which keys just became blocked (so the caller writes its
   * warn line once per window, not once per guess).
   */
  fail(source: string, credential: string | undefined): { source: boolean; credential: boolean } {
    const t = this.now();
    return {
      source: this.sources.fail(source, t),
      credential: credential !== undefined && this.credentials.fail(fingerprint(credential), t),
    };
  }

  /** Keys held (tests check the bound). */
  size(): { sources: number; credentials: number } {
    return { sources: this.sources.size, credentials: this.credentials.size };
  }
}
