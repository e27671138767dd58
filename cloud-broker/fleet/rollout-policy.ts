import { OutpostError } from '../../protocol/errors/index.js';

/**
 * The policy of a staged rollout (docs/rollouts.md, "Policy"), its one parser for the HTTP body,
 * the CLI's value parsers (N | P%, durations), and the pure batch planner. Counts are either an
 * absolute number of devices or a percentage of the rollout's devices.
 */
export type Count = { count: number } | { percent: number };

export interface RolloutPolicy {
  /** The first batch, alone; null: no canary. */
  canary: Count | null;
  /** Devices per batch after the canary; null: all the remaining devices in one batch. */
  batchSize: Count | null;
  /** At most this many devices get the new desired state in any 60 s; null: no limit. */
  maxPerMinute: number | null;
  /** Each batch after the first regular one is this many times larger (1 = constant). */
  rateIncrease: number;
  /** More failures than this stop the rollout (a percentage is of the devices finished). */
  maxFailures: Count;
  /** Failures are judged only once this many devices finished (succeeded or failed). */
  minDevices: number;
  /** A device that is not active within this (or sends no health sample this long after its soak) failed. */
  deviceTimeoutSeconds: number;
  /** How long a device must stay healthy on the new version before it counts as succeeded. */
  soakSeconds: number;
  onFailure: 'rollback' | 'pause';
  /** A device whose inference error rate during the soak is above this failed (0..1). */
  maxErrorRate: number;
}

export const DEFAULT_POLICY: RolloutPolicy = {
  canary: null,
  batchSize: null,
  maxPerMinute: null,
  rateIncrease: 1,
  maxFailures: { count: 0 },
  minDevices: 1,
  deviceTimeoutSeconds: 600,
  soakSeconds: 60,
  onFailure: 'rollback',
  maxErrorRate: 0.05,
};

const MAX_SECONDS = 7 * 24 * 3600;

function bad(key: string, what: string, value: unknown): OutpostError {
  return new OutpostError('ROLLOUT_POLICY_INVALID', `${key} must be ${what}, got ${JSON.stringify(value)}`, {
    key,
    value,
  });
}

function int(v: unknown, key: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max)
    throw bad(key, `an integer from ${min} to ${max}`, v);
  return v;
}

function num(v: unknown, key: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max)
    throw bad(key, `a number from ${min} to ${max}`, v);
  return v;
}

function countOf(v: unknown, key: string, minCount: number): Count {
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    if ('count' in o && Object.keys(o).length === 1)
      return { count: int(o.count, `${key}.count`, minCount, 1_000_000) };
    if ('percent' in o && Object.keys(o).length === 1) return { percent: num(o.percent, `${key}.percent`, 0.01, 100) };
  }
  throw bad(key, '{"count": N} or {"percent": P}', v);
}

/** Validates a policy from an HTTP body (missing keys take the defaults). */
export function parseRolloutPolicy(v: unknown): RolloutPolicy {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw bad('rollout', 'an object of policy fields', v);
  const o = v as Record<string, unknown>;
  const known = new Set(Object.keys(DEFAULT_POLICY));
  for (const k of Object.keys(o)) if (!known.has(k)) throw bad(`rollout.${k}`, `one of ${[...known].join(', ')}`, k);
  const p: RolloutPolicy = { ...DEFAULT_POLICY };
  if (o.canary !== undefined && o.canary !== null) p.canary = countOf(o.canary, 'rollout.canary', 1);
  if (o.batchSize !== undefined && o.batchSize !== null) p.batchSize = countOf(o.batchSize, 'rollout.batchSize', 1);
  if (o.maxPerMinute !== undefined && o.maxPerMinute !== null)
    p.maxPerMinute = int(o.maxPerMinute, 'rollout.maxPerMinute', 1, 100_000);
  if (o.rateIncrease !== undefined) p.rateIncrease = num(o.rateIncrease, 'rollout.rateIncrease', 1, 5);
  if (o.maxFailures !== undefined) p.maxFailures = countOf(o.maxFailures, 'rollout.maxFailures', 0);
  if (o.minDevices !== undefined) p.minDevices = int(o.minDevices, 'rollout.minDevices', 1, 1_000_000);
  if (o.deviceTimeoutSeconds !== undefined)
    p.deviceTimeoutSeconds = num(o.deviceTimeoutSeconds, 'rollout.deviceTimeoutSeconds', 0.1, MAX_SECONDS);
  if (o.soakSeconds !== undefined) p.soakSeconds = num(o.soakSeconds, 'rollout.soakSeconds', 0, MAX_SECONDS);
  if (o.onFailure !== undefined) {
    if (o.onFailure !== 'rollback' && o.onFailure !== 'pause')
      throw bad('rollout.onFailure', '"rollback" or "pause"', o.onFailure);
    p.onFailure = o.onFailure;
  }
  if (o.maxErrorRate !== undefined) p.maxErrorRate = num(o.maxErrorRate, 'rollout.maxErrorRate', 0, 1);
  return p;
}

/** `N` or `P%` from the command line. */
export function parseCountFlag(text: string, flag: string): Count {
  const m = /^(\d+(?:\.\d+)?)(%?)$/.exec(text.trim());
  if (!m) throw bad(flag, 'N (devices) or P% (of the rollout)', text);
  const n = Number(m[1]);
  if (m[2] === '%') {
    if (n <= 0 || n > 100) throw bad(flag, 'a percentage above 0 and at most 100', text);
    return { percent: n };
  }
  if (!Number.isSafeInteger(n)) throw bad(flag, 'a whole number of devices', text);
  return { count: n };
}

/** `1.5s`, `90s`, `5m`, `2h`, `1d`, or plain seconds. */
export function parseDurationFlag(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw bad(flag, 'a duration like 30s, 5m, 1h (plain numbers are seconds)', text);
  const unit = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 }[m[2] ?? 's']!;
  const seconds = Number(m[1]) * unit;
  if (seconds > MAX_SECONDS) throw bad(flag, 'at most 7 days', text);
  return seconds;
}

/** How many devices a count means out of `total` (a percentage rounds up, so 10% of 5 is 1). */
export function resolveCount(c: Count, total: number): number {
  return 'count' in c ? c.count : Math.ceil((c.percent / 100) * total - 1e-9);
}

/** Whether `failed` out of `finished` is beyond the policy's threshold (after minDevices finished). */
export function beyondThreshold(p: RolloutPolicy, failed: number, finished: number, allFinished: boolean): boolean {
  if (failed === 0) return false;
  // min-devices delays the judgement, it cannot cancel it: once every device finished, it is judged.
  if (finished < p.minDevices && !allFinished) return false;
  if ('count' in p.maxFailures) return failed > p.maxFailures.count;
  return (100 * failed) / finished > p.maxFailures.percent;
}

/**
 * The batch sizes for `total` devices: the canary first (if any), then batches of batchSize,
 * each later one `rateIncrease` times the previous (rounded up), the last one taking the rest.
 * Pure; the plan and the rollout use the same function, so the plan shows the real batches.
 */
export function planBatchSizes(p: RolloutPolicy, total: number): { size: number; canary: boolean }[] {
  const out: { size: number; canary: boolean }[] = [];
  let left = total;
  if (p.canary && left > 0) {
    const c = Math.min(left, Math.max(1, resolveCount(p.canary, total)));
    out.push({ size: c, canary: true });
    left -= c;
  }
  let size = p.batchSize ? Math.max(1, resolveCount(p.batchSize, total)) : left;
  while (left > 0) {
    const n = Math.min(left, Math.max(1, Math.ceil(size - 1e-9)));
    out.push({ size: n, canary: false });
    left -= n;
    size *= p.rateIncrease;
  }
  return out;
}

/**
 * Splits the rollout's devices into its batches: online devices first (a canary that is offline
 * would only spend --device-timeout), then by id, so the same fleet always forms the same batches.
 */
export function formBatches<D extends { id: string; status: 'online' | 'offline' | null }>(
  p: RolloutPolicy,
  devices: readonly D[],
): { canary: boolean; devices: string[] }[] {
  const ordered = [...devices].sort(
    (a, b) => Number(b.status === 'online') - Number(a.status === 'online') || a.id.localeCompare(b.id),
  );
  let at = 0;
  return planBatchSizes(p, ordered.length).map((b) => {
    const ids = ordered.slice(at, at + b.size).map((d) => d.id);
    at += b.size;
    return { canary: b.canary, devices: ids };
  });
}
