import { OutpostError } from '../protocol/errors/index.js';
import { DEFAULT_FAILURE_LIMITS, type FailureLimits } from './auth/failure-limiter.js';

/**
 * Every abuse bound of the cloud in one object (docs/configuration.md, "Cloud limits"): startCloud
 * takes it as `limits`, and each key can also be set by an environment variable. Defaults are
 * sized for one machine serving a fleet of thousands of devices; each is tested by a test that
 * exceeds it (docs/security.md lists them).
 */
export interface CloudLimits {
  http: {
    /** Time to receive the headers of a request. */
    headersTimeoutMs: number;
    /** Time to receive a whole request, body included (0: none; the body rate still applies). */
    requestTimeoutMs: number;
    /** A request body must bring at least bodyMinBytes per bodyWindowMs, or it is cut (408). */
    bodyMinBytes: number;
    bodyWindowMs: number;
    /** A connection with no traffic at all is closed after this long. */
    idleTimeoutMs: number;
    /** Open connections; one more is answered 503 HTTP_TOO_MANY_CONNECTIONS and closed. */
    maxConnections: number;
  };
  /** Failed authentications (HTTP tokens and MQTT passwords share the tables). */
  auth: FailureLimits;
  uploads: {
    /** Per user: blobs uploaded that no published version lists (the admin is exempt). */
    maxUnreferencedCount: number;
    maxUnreferencedBytes: number;
    /** Free space that must remain on the blob filesystem after a declared upload. */
    minFreeBytes: number;
  };
  broker: {
    /** Largest payload per topic kind a device may publish (bytes). */
    maxPayload: { reported: number; status: number; telemetry: number; responses: number };
    /** Publishes per second per device (token bucket), with a burst allowance. */
    publishRate: number;
    publishBurst: number;
    /** Publishes of one device the broker processes at once (authorized, not yet delivered). */
    maxInflight: number;
    /** A verified device login is trusted from memory this long (0: every CONNECT asks the database). */
    loginCacheTtlMs: number;
    /** Verified device logins held in memory per replica; the oldest is dropped first. */
    loginCacheMax: number;
  };
}

export const DEFAULT_CLOUD_LIMITS: CloudLimits = Object.freeze({
  http: {
    headersTimeoutMs: 30_000,
    requestTimeoutMs: 3_600_000,
    bodyMinBytes: 16 * 1024,
    bodyWindowMs: 30_000,
    idleTimeoutMs: 120_000,
    maxConnections: 2_048,
  },
  auth: { ...DEFAULT_FAILURE_LIMITS },
  uploads: {
    maxUnreferencedCount: 1_000,
    maxUnreferencedBytes: 16 * 1024 ** 3,
    minFreeBytes: 1024 ** 3,
  },
  broker: {
    maxPayload: { reported: 256 * 1024, status: 4 * 1024, telemetry: 64 * 1024, responses: 64 * 1024 },
    publishRate: 20,
    publishBurst: 100,
    maxInflight: 32,
    loginCacheTtlMs: 60_000,
    loginCacheMax: 100_000,
  },
}) as CloudLimits;

export type CloudLimitsInput = { [K in keyof CloudLimits]?: Partial<CloudLimits[K]> } & {
  broker?: { maxPayload?: Partial<CloudLimits['broker']['maxPayload']> };
};

/** `http.bodyMinBytes` -> `OUTPOST_CLOUD_HTTP_BODY_MIN_BYTES`. */
export function envName(key: string): string {
  return `OUTPOST_CLOUD_${key
    .replace(/\./g, '_')
    .replace(/([a-z])([A-Z])/g, '$1_$2')
    .toUpperCase()}`;
}

function leaves(o: object, prefix = ''): [string, number][] {
  return Object.entries(o).flatMap(([k, v]) =>
    typeof v === 'object' && v !== null ? leaves(v, `${prefix}${k}.`) : [[`${prefix}${k}`, v as number]],
  );
}

/** Every key with its default (docs and tests read this list). */
export function limitKeys(): [string, number][] {
  return leaves(DEFAULT_CLOUD_LIMITS);
}

/**
 * Defaults, then environment variables, then `input` (the caller's). Every value must be a
 * non-negative integer; anything else is refused with the variable's or key's name.
 */
export function resolveCloudLimits(input: CloudLimitsInput = {}, env: NodeJS.ProcessEnv = {}): CloudLimits {
  const out = structuredClone(DEFAULT_CLOUD_LIMITS) as unknown as Record<string, Record<string, unknown>>;
  const set = (key: string, raw: unknown, from: string): void => {
    const v = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
      throw new OutpostError('USAGE', `${from} must be a non-negative integer, got ${JSON.stringify(raw)}`, {
        key,
      });
    const path = key.split('.');
    let o: Record<string, unknown> = out;
    for (const p of path.slice(0, -1)) o = o[p] as Record<string, unknown>;
    o[path[path.length - 1]] = v;
  };
  const given = new Map(leaves(input as object));
  for (const [key] of limitKeys()) {
    const e = env[envName(key)];
    if (e !== undefined && e !== '') set(key, e, envName(key));
    if (given.has(key)) set(key, given.get(key), `limits.${key}`);
  }
  for (const key of given.keys())
    if (!limitKeys().some(([k]) => k === key)) throw new OutpostError('USAGE', `unknown cloud limit ${key}`, { key });
  return out as unknown as CloudLimits;
}
