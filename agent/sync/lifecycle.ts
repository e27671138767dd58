import { OutpostError } from '../../protocol/errors/index.js';
import type { ModelState, ReportedModel } from '../../protocol/reported-state.js';

/**
 * The lifecycle of one model on the device: every state it can be in, every event that moves it,
 * in one table. The reconciler only fires events (`next`); it never writes a state itself, and
 * the reported state is derived from the records this module keeps (`reportedOf`).
 *
 * The shape follows Mender's updater: a state's work ends in an event, and the table alone says
 * where that event leads, so the whole lifecycle can be read (and tested) in one place. Where the
 * same work can end in two ways, the caller fires two different events (`want` or `have`), and the
 * table stays free of conditions.
 *
 *   absent       the device keeps no record of the model (never desired, or removed)
 *   pending      a version is desired and no attempt at it has started yet
 *   downloading  the install is fetching blobs (`progress` = bytes on disk, bytes needed)
 *   verifying    the staged files are being checked against the signed metadata
 *   installing   the activation gate (load + smoke run) and the flip of `current`
 *   active       the desired version is current and serves
 *   failed       the last attempt failed (`error`); the previous version, if any, keeps serving
 *   rolled-back  a rollback command flipped to an older kept version (`error` says why it is pinned)
 *
 * An attempt can restart from any install phase: a newer document aborts an apply in flight, and
 * the next apply starts the install of the same version from its beginning (downloads resume).
 * A transition the table does not hold is a bug in the agent, never a condition of the device: it
 * throws INTERNAL, naming the model, the state and the event.
 */
export type LifecycleState = 'absent' | ModelState;

export type LifecycleEvent =
  /** A desired version that is not the current one on disk. */
  | { type: 'want'; version: number }
  /** The desired version is already current on disk (at start, or a document asked for it again). */
  | { type: 'have'; version: number }
  /** The current version on disk was read; it moves no state, it only updates `activeVersion`. */
  | { type: 'observe'; current: number | null }
  | { type: 'download'; bytes: number; total: number }
  | { type: 'verify' }
  | { type: 'install' }
  /** The desired version became current and the runtime serves it. */
  | { type: 'activate'; version: number }
  | { type: 'fail'; error: { code: string; message: string } }
  /** A rollback command flipped `current` back to `to`. */
  | { type: 'roll-back'; to: number; error: { code: string; message: string } }
  /** The model is no longer desired and was deleted from the device. */
  | { type: 'remove' };

export type LifecycleEventType = LifecycleEvent['type'];

const PRESENT = ['pending', 'downloading', 'verifying', 'installing', 'active', 'failed', 'rolled-back'] as const;
const ATTEMPT_CAN_START = ['pending', 'failed', 'rolled-back', 'downloading', 'verifying', 'installing'] as const;

type Row = readonly [from: readonly LifecycleState[], event: LifecycleEventType, to: LifecycleState | 'same'];

/**
 * The transition table. Read a row as: in any of these states, this event leads there. A
 * (state, event) pair that no row names is illegal.
 */
const ROWS: readonly Row[] = [
  [['absent', ...PRESENT], 'want', 'pending'],
  [['absent', ...PRESENT], 'have', 'active'],
  [PRESENT, 'observe', 'same'],
  // An install phase starts an attempt (from pending, or a retry after a failure or a rollback pin
  // was lifted) or continues one; an active model has nothing to install.
  [ATTEMPT_CAN_START, 'download', 'downloading'],
  [ATTEMPT_CAN_START, 'verify', 'verifying'],
  [ATTEMPT_CAN_START, 'install', 'installing'],
  // After an install; or a kept version activated in place (rollback to it is instant), which has
  // no install phases. Downloading and verifying never end in an activation without installing.
  [['pending', 'installing', 'failed', 'rolled-back'], 'activate', 'active'],
  [PRESENT, 'fail', 'failed'],
  [PRESENT, 'roll-back', 'rolled-back'],
  [PRESENT, 'remove', 'absent'],
];

const TABLE: ReadonlyMap<string, LifecycleState | 'same'> = new Map(
  ROWS.flatMap(([from, event, to]) => from.map((s) => [`${s}:${event}`, to] as const)),
);

export const LIFECYCLE_STATES: readonly LifecycleState[] = ['absent', ...PRESENT];
export const LIFECYCLE_EVENTS: readonly LifecycleEventType[] = [...new Set(ROWS.map((r) => r[1]))];

/** Where `event` leads from `state`, or null when the table has no such transition. */
export function target(state: LifecycleState, event: LifecycleEventType): LifecycleState | null {
  const to = TABLE.get(`${state}:${event}`);
  if (to === undefined) return null;
  return to === 'same' ? state : to;
}

/** What the device knows of one model; `state` is moved only by `next`. */
export interface ModelRecord {
  readonly id: string;
  /** The version the device works toward (the desired one); null for a model it only found on disk. */
  readonly version: number | null;
  /** The version current on disk, served to apps; null before the first install. */
  readonly activeVersion: number | null;
  readonly state: LifecycleState;
  readonly progress?: { bytes: number; total: number };
  readonly error?: { code: string; message: string };
}

export function absent(id: string): ModelRecord {
  return { id, version: null, activeVersion: null, state: 'absent' };
}

/** The record after `event`; throws INTERNAL for a transition the table does not hold. Pure. */
export function next(rec: ModelRecord, event: LifecycleEvent): ModelRecord {
  const state = target(rec.state, event.type);
  if (state === null) {
    throw new OutpostError(
      'INTERNAL',
      `illegal model lifecycle transition: event "${event.type}" in state "${rec.state}" for ${rec.id}; this is a bug in the agent, please report it with the agent's log`,
      { model: rec.id, state: rec.state, event: event.type },
    );
  }
  // Progress belongs to downloading and an error to failed / rolled-back: the other states drop them.
  const base = { id: rec.id, version: rec.version, activeVersion: rec.activeVersion, state };
  switch (event.type) {
    case 'want':
      return { ...base, version: event.version };
    case 'have':
      return { ...base, version: event.version, activeVersion: event.version };
    case 'observe':
      return { ...rec, activeVersion: event.current };
    case 'download':
      return { ...base, progress: { bytes: event.bytes, total: event.total } };
    case 'activate':
      return { ...base, version: event.version, activeVersion: event.version };
    case 'fail':
      return { ...base, error: event.error };
    case 'roll-back':
      return { ...base, activeVersion: event.to, error: event.error };
    case 'remove':
      return absent(rec.id);
    default:
      return base;
  }
}

/** The record as the reported-state document carries it; an absent model is not reported. */
export function reportedOf(rec: ModelRecord): ReportedModel | null {
  if (rec.state === 'absent') return null;
  const out: ReportedModel = { id: rec.id, version: rec.version, activeVersion: rec.activeVersion, state: rec.state };
  if (rec.progress) out.progress = rec.progress;
  if (rec.error) out.error = rec.error;
  return out;
}
