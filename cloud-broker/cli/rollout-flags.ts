import { OutpostError } from '../../protocol/errors/index.js';
import { parseCountFlag, parseDurationFlag } from '../fleet/rollout-policy.js';
import { stringFlag, type FlagOptions, type FlagValues } from './args.js';

/**
 * The rollout flags of `deploy` and `plan` (docs/rollouts.md, "Policy"). They turn into the
 * HTTP body's `rollout` object; the cloud validates it again (parseRolloutPolicy), the CLI only
 * parses the text forms so a typo is a usage error before anything is sent.
 */
export const ROLLOUT_FLAGS: FlagOptions = {
  canary: { type: 'string' },
  'batch-size': { type: 'string' },
  'max-per-minute': { type: 'string' },
  'rate-increase': { type: 'string' },
  'max-failures': { type: 'string' },
  'min-devices': { type: 'string' },
  'device-timeout': { type: 'string' },
  soak: { type: 'string' },
  'on-failure': { type: 'string' },
};

export const ROLLOUT_HELP = `Staged (any of these makes it a rollout; see docs/rollouts.md):
  --canary N|P%          the first batch, alone
  --batch-size N|P%      devices per batch after the canary (default: all the rest)
  --max-per-minute N     at most N devices get the version in any minute
  --rate-increase F      each later batch is F times larger (1-5, default 1)
  --max-failures N|P%    more failed devices than this stop the rollout (default 0)
  --min-devices N        judge failures once N devices finished (default 1)
  --device-timeout D     a device not active within D failed (default 10m)
  --soak D               how long a device must stay healthy on it (default 60s)
  --on-failure rollback|pause   what a stop does (default rollback)`;

function intFlag(text: string, flag: string, min: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min)
    throw new OutpostError('ROLLOUT_POLICY_INVALID', `${flag} must be a whole number >= ${min}, got "${text}"`, {
      key: flag,
    });
  return n;
}

/** The `rollout` body from the flags, or null when none was given (a plain, all-at-once deploy). */
export function rolloutPolicyOf(values: FlagValues): Record<string, unknown> | null {
  const v = (k: string) => stringFlag(values, k);
  if (!Object.keys(ROLLOUT_FLAGS).some((k) => v(k) !== undefined)) return null;
  const p: Record<string, unknown> = {};
  const set = (flag: string, key: string, parse: (t: string, f: string) => unknown): void => {
    const t = v(flag);
    if (t !== undefined) p[key] = parse(t, `--${flag}`);
  };
  set('canary', 'canary', parseCountFlag);
  set('batch-size', 'batchSize', parseCountFlag);
  set('max-per-minute', 'maxPerMinute', (t, f) => intFlag(t, f, 1));
  set('rate-increase', 'rateIncrease', (t, f) => {
    const n = Number(t);
    if (!Number.isFinite(n) || n < 1 || n > 5)
      throw new OutpostError('ROLLOUT_POLICY_INVALID', `${f} must be a number from 1 to 5, got "${t}"`, { key: f });
    return n;
  });
  set('max-failures', 'maxFailures', parseCountFlag);
  set('min-devices', 'minDevices', (t, f) => intFlag(t, f, 1));
  set('device-timeout', 'deviceTimeoutSeconds', parseDurationFlag);
  set('soak', 'soakSeconds', parseDurationFlag);
  set('on-failure', 'onFailure', (t, f) => {
    if (t !== 'rollback' && t !== 'pause')
      throw new OutpostError('ROLLOUT_POLICY_INVALID', `${f} must be rollback or pause, got "${t}"`, { key: f });
    return t;
  });
  return p;
}
