import { describe, expect, it } from 'vitest';
import { plan } from '../../agent/sync/planner.js';
import type { InstalledModel } from '../../agent/store/store.js';

const m = (id: string, current: number | null, versions: number[] = current ? [current] : []): InstalledModel => ({
  id,
  current,
  versions,
});

describe('sync planner', () => {
  it('plans nothing when the device already has the desired state', () => {
    expect(plan({ desired: [{ id: 'a/x', version: 2 }], installed: [m('a/x', 2, [1, 2])] })).toEqual([]);
  });

  it('installs a new model and a new version, activates a kept one, removes what is no longer desired', () => {
    const steps = plan({
      desired: [
        { id: 'b/new', version: 1 },
        { id: 'a/up', version: 3 },
        { id: 'a/back', version: 1 },
      ],
      installed: [m('a/up', 2, [1, 2]), m('a/back', 2, [1, 2]), m('z/gone', 4)],
    });
    expect(steps).toEqual([
      { kind: 'activate', id: 'a/back', version: 1 },
      { kind: 'install', id: 'a/up', version: 3 },
      { kind: 'install', id: 'b/new', version: 1 },
      { kind: 'remove', id: 'z/gone' },
    ]);
  });

  it('does not retry a version that failed for a reason retrying cannot fix, but retries transient ones', () => {
    const desired = [
      { id: 'a/x', version: 2 },
      { id: 'a/y', version: 5 },
    ];
    const installed = [m('a/x', 1), m('a/y', 4)];
    const steps = plan({
      desired,
      installed,
      failures: [
        { id: 'a/x', version: 2, code: 'FETCH_HASH_MISMATCH', retryable: false },
        { id: 'a/y', version: 5, code: 'FETCH_NETWORK', retryable: true },
      ],
    });
    expect(steps).toEqual([{ kind: 'install', id: 'a/y', version: 5 }]);
  });

  it('rejects a model the device cannot run instead of installing it', () => {
    const steps = plan({
      desired: [{ id: 'a/trt', version: 1, device: 'agx-xavier' }],
      installed: [],
      incompatible: (x) =>
        x.device !== 'nano' ? { code: 'MODEL_INCOMPATIBLE', message: `built for ${x.device}` } : null,
    });
    expect(steps).toEqual([
      { kind: 'reject', id: 'a/trt', version: 1, code: 'MODEL_INCOMPATIBLE', message: 'built for agx-xavier' },
    ]);
  });

  it('is idempotent: the state the steps produce plans no further steps', () => {
    const desired = [
      { id: 'a/x', version: 2 },
      { id: 'b/y', version: 1 },
    ];
    const after = [m('a/x', 2, [1, 2]), m('b/y', 1), m('c/old', null, [3])];
    expect(plan({ desired, installed: after })).toEqual([]);
  });
});
