import { describe, expect, it } from 'vitest';
import { isRetryable, OutpostError } from '../../protocol/errors/index.js';
import { MODEL_STATES } from '../../protocol/reported-state.js';
import {
  absent,
  LIFECYCLE_EVENTS,
  LIFECYCLE_STATES,
  next,
  reportedOf,
  target,
  type LifecycleEvent,
  type LifecycleEventType,
  type LifecycleState,
  type ModelRecord,
} from '../../agent/sync/lifecycle.js';

const err = { code: 'FETCH_NETWORK', message: 'down' };
const sample: Record<LifecycleEventType, LifecycleEvent> = {
  want: { type: 'want', version: 3 },
  have: { type: 'have', version: 3 },
  observe: { type: 'observe', current: 2 },
  download: { type: 'download', bytes: 5, total: 9 },
  verify: { type: 'verify' },
  install: { type: 'install' },
  activate: { type: 'activate', version: 3 },
  fail: { type: 'fail', error: err },
  'roll-back': { type: 'roll-back', to: 1, error: { code: 'SYNC_PINNED_BY_ROLLBACK', message: 'pinned' } },
  remove: { type: 'remove' },
};

type Expected = Record<LifecycleEventType, LifecycleState | '-'>;
/** A present state's row: every model can be re-targeted, failed, rolled back, removed. */
const present = (self: LifecycleState, own: Partial<Expected>): Expected => ({
  want: 'pending',
  have: 'active',
  observe: self,
  download: 'downloading',
  verify: 'verifying',
  install: 'installing',
  activate: 'active',
  fail: 'failed',
  'roll-back': 'rolled-back',
  remove: 'absent',
  ...own,
});
const NO_INSTALL = { download: '-', verify: '-', install: '-' } as const;

/** The expected table, written out independently of the module's rows ('-' = illegal). */
const EXPECTED: Record<LifecycleState, Expected> = {
  absent: {
    ...present('absent', NO_INSTALL),
    observe: '-',
    activate: '-',
    fail: '-',
    'roll-back': '-',
    remove: '-',
  },
  pending: present('pending', {}),
  downloading: present('downloading', { activate: '-' }),
  verifying: present('verifying', { activate: '-' }),
  installing: present('installing', {}),
  active: present('active', { ...NO_INSTALL, activate: '-' }),
  failed: present('failed', {}),
  'rolled-back': present('rolled-back', {}),
};

const at = (state: LifecycleState): ModelRecord =>
  state === 'absent' ? absent('a/m') : { id: 'a/m', version: 3, activeVersion: 2, state };

describe('model lifecycle table', () => {
  it('holds every reported state, plus absent, and every event', () => {
    expect([...LIFECYCLE_STATES].sort()).toEqual(['absent', ...MODEL_STATES].sort());
    expect([...LIFECYCLE_EVENTS].sort()).toEqual(Object.keys(sample).sort());
  });

  for (const state of LIFECYCLE_STATES) {
    for (const event of LIFECYCLE_EVENTS) {
      const want = EXPECTED[state][event];
      if (want === '-') {
        it(`refuses ${event} in ${state}`, () => {
          expect(target(state, event)).toBeNull();
          let thrown: unknown;
          try {
            next(at(state), sample[event]);
          } catch (e) {
            thrown = e;
          }
          expect(thrown).toBeInstanceOf(OutpostError);
          expect((thrown as OutpostError).code).toBe('INTERNAL');
          expect((thrown as OutpostError).message).toContain(`"${event}" in state "${state}"`);
          expect((thrown as OutpostError).details).toEqual({ model: 'a/m', state, event });
        });
      } else {
        it(`moves ${state} --${event}--> ${want}`, () => {
          expect(target(state, event)).toBe(want);
          expect(next(at(state), sample[event]).state).toBe(want);
        });
      }
    }
  }
});

describe('model records', () => {
  it('keep progress only while downloading and an error only while failed or rolled back', () => {
    const d = next(at('pending'), sample.download);
    expect(d.progress).toEqual({ bytes: 5, total: 9 });
    expect(next(d, { type: 'observe', current: 2 }).progress).toEqual({ bytes: 5, total: 9 });
    expect(next(d, sample.verify).progress).toBeUndefined();
    const f = next(d, sample.fail);
    expect(f).toEqual({ id: 'a/m', version: 3, activeVersion: 2, state: 'failed', error: err });
    expect(next(f, sample.download).error).toBeUndefined();
    expect(next(f, sample.want)).toEqual({ id: 'a/m', version: 3, activeVersion: 2, state: 'pending' });
  });

  it('set the versions that each event carries', () => {
    expect(next(absent('a/m'), { type: 'have', version: 4 })).toMatchObject({ version: 4, activeVersion: 4 });
    expect(next(at('installing'), sample.activate)).toMatchObject({ version: 3, activeVersion: 3, state: 'active' });
    expect(next(at('active'), sample['roll-back'])).toMatchObject({ version: 3, activeVersion: 1 });
    expect(next(at('pending'), { type: 'observe', current: null })).toMatchObject({ activeVersion: null });
    expect(next(at('failed'), sample.remove)).toEqual(absent('a/m'));
  });

  it('are reported as the reported-state document carries them; an absent model is not', () => {
    expect(reportedOf(absent('a/m'))).toBeNull();
    expect(reportedOf(next(at('pending'), sample.download))).toEqual({
      id: 'a/m',
      version: 3,
      activeVersion: 2,
      state: 'downloading',
      progress: { bytes: 5, total: 9 },
    });
  });
});

describe('retryability comes from the error catalog', () => {
  it('retries what another attempt can fix, and nothing else', () => {
    for (const code of ['FETCH_NETWORK', 'FETCH_HTTP_STATUS', 'FETCH_NO_SPACE', 'STORE_NO_SPACE', 'IO_ERROR'])
      expect(isRetryable(code), code).toBe(true);
    for (const code of ['FETCH_HASH_MISMATCH', 'SYNC_NO_BACKEND', 'SYNC_PINNED_BY_ROLLBACK', 'INTERNAL', 'NOPE'])
      expect(isRetryable(code), code).toBe(false);
  });
});
