import { describe, expect, it } from 'vitest';
import {
  beyondThreshold,
  DEFAULT_POLICY,
  formBatches,
  parseCountFlag,
  parseDurationFlag,
  parseRolloutPolicy,
  planBatchSizes,
  type RolloutPolicy,
} from '../../cloud-broker/fleet/rollout-policy.js';

const policy = (p: Partial<RolloutPolicy>): RolloutPolicy => ({ ...DEFAULT_POLICY, ...p });
const sizes = (p: Partial<RolloutPolicy>, n: number) => planBatchSizes(policy(p), n).map((b) => b.size);

describe('rollout policy', () => {
  it('parses the HTTP body with defaults, and names the bad key', () => {
    expect(parseRolloutPolicy({})).toEqual(DEFAULT_POLICY);
    expect(parseRolloutPolicy({ canary: { percent: 10 }, onFailure: 'pause' })).toMatchObject({
      canary: { percent: 10 },
      onFailure: 'pause',
    });
    for (const bad of [
      { canary: { count: 0 } },
      { batchSize: 3 },
      { rateIncrease: 6 },
      { onFailure: 'retry' },
      { soakSeconds: -1 },
      { maxErrorRate: 2 },
      { unknown: 1 },
    ]) {
      expect(() => parseRolloutPolicy(bad), JSON.stringify(bad)).toThrow(
        expect.objectContaining({ code: 'ROLLOUT_POLICY_INVALID' }),
      );
    }
  });

  it('parses the CLI values: N, P%, durations', () => {
    expect(parseCountFlag('3', '--canary')).toEqual({ count: 3 });
    expect(parseCountFlag('12.5%', '--batch-size')).toEqual({ percent: 12.5 });
    expect(() => parseCountFlag('0%', '--canary')).toThrow(expect.objectContaining({ code: 'ROLLOUT_POLICY_INVALID' }));
    expect(() => parseCountFlag('x', '--canary')).toThrow(expect.objectContaining({ code: 'ROLLOUT_POLICY_INVALID' }));
    expect(parseDurationFlag('1.5s', '--soak')).toBe(1.5);
    expect(parseDurationFlag('5m', '--soak')).toBe(300);
    expect(parseDurationFlag('90', '--soak')).toBe(90);
    expect(parseDurationFlag('250ms', '--soak')).toBe(0.25);
    expect(() => parseDurationFlag('8d', '--soak')).toThrow(
      expect.objectContaining({ code: 'ROLLOUT_POLICY_INVALID' }),
    );
  });

  it('forms batches: canary, fixed size, growing size, percentages, the rest last', () => {
    expect(sizes({}, 5)).toEqual([5]);
    expect(sizes({ canary: { count: 1 }, batchSize: { count: 2 } }, 8)).toEqual([1, 2, 2, 2, 1]);
    expect(sizes({ canary: { count: 1 }, batchSize: { count: 1 }, rateIncrease: 2 }, 10)).toEqual([1, 1, 2, 4, 2]);
    expect(sizes({ canary: { percent: 10 }, batchSize: { percent: 25 } }, 20)).toEqual([2, 5, 5, 5, 3]);
    expect(sizes({ canary: { count: 5 } }, 3)).toEqual([3]);
    expect(sizes({ canary: { count: 1 } }, 0)).toEqual([]);
    expect(planBatchSizes(policy({ canary: { count: 1 } }), 3)[0].canary).toBe(true);
  });

  it('puts online devices first, then orders by id', () => {
    const devs = [
      { id: 'c', status: 'online' as const },
      { id: 'a', status: 'offline' as const },
      { id: 'b', status: 'online' as const },
      { id: 'd', status: null },
    ];
    expect(formBatches(policy({ canary: { count: 1 }, batchSize: { count: 2 } }), devs)).toEqual([
      { canary: true, devices: ['b'] },
      { canary: false, devices: ['c', 'a'] },
      { canary: false, devices: ['d'] },
    ]);
  });

  it('judges failures only after min-devices finished, unless every device finished', () => {
    const p = policy({ maxFailures: { count: 1 }, minDevices: 4 });
    expect(beyondThreshold(p, 2, 3, false)).toBe(false);
    expect(beyondThreshold(p, 2, 4, false)).toBe(true);
    expect(beyondThreshold(p, 2, 3, true)).toBe(true);
    expect(beyondThreshold(p, 1, 4, false)).toBe(false);
    const pct = policy({ maxFailures: { percent: 25 }, minDevices: 1 });
    expect(beyondThreshold(pct, 1, 4, false)).toBe(false);
    expect(beyondThreshold(pct, 2, 4, false)).toBe(true);
    expect(beyondThreshold(policy({}), 0, 10, true)).toBe(false);
  });
});
