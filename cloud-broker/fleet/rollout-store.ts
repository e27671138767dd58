import type { Db } from '../db/open.js';
import type { RolloutPolicy } from './rollout-policy.js';
import type {
  BatchState,
  ErrorInfo,
  RolloutBatch,
  RolloutDeviceState,
  RolloutDeviceView,
  RolloutModelRef,
  RolloutState,
} from './rollout-types.js';
import type { Target, TargetKind } from './types.js';

/**
 * Every SQL statement of rollouts (cloud-broker/db/migrations-rollouts.ts). No policy here: the
 * scheduler decides (rollout-step.ts) and applies its decisions through these calls inside one
 * transaction per step. Keeping the SQL in this one class is what lets another database engine
 * replace it without touching the scheduler.
 */
export interface RolloutRecord {
  id: number;
  state: RolloutState;
  target: Target;
  app: string | null;
  models: RolloutModelRef[];
  policy: RolloutPolicy;
  reason: ErrorInfo | null;
  rolledBack: boolean;
  /** Failures counted before the last resume, which no longer count against the threshold. */
  failuresForgiven: number;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
}

export type BatchRecord = RolloutBatch;

/** What the scheduler remembers of a device at the start of its soak. */
export interface Baseline {
  reportedStartedAt: string | null;
  telemetryStartedAt: string | null;
  /** Per `model@version`: the running totals of the latest sample before the soak. */
  counters: Record<string, { total: number; totalErrors: number }>;
}

/** The stored part of a RolloutDeviceView, plus what only the scheduler needs. */
export interface RolloutDeviceRecord
  extends Pick<RolloutDeviceView, 'device' | 'batch' | 'state' | 'since' | 'sentAt' | 'revision' | 'error'> {
  soakStartedAt: string | null;
  baseline: Baseline | null;
  healthRequestedAt: string | null;
}

export type DevicePatch = Partial<Omit<RolloutDeviceRecord, 'device' | 'batch' | 'sentAt'>>;
export type BatchPatch = Partial<Pick<BatchRecord, 'state' | 'sentAt' | 'doneAt'>>;
export type RolloutPatch = Partial<
  Pick<RolloutRecord, 'state' | 'reason' | 'rolledBack' | 'failuresForgiven' | 'finishedAt'>
>;

interface RolloutRow {
  id: number;
  state: RolloutState;
  target_kind: TargetKind;
  target: string;
  app: string | null;
  models: string;
  policy: string;
  reason_code: string | null;
  reason_message: string | null;
  rolled_back: number;
  failures_forgiven: number;
  created_by: string;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
}

interface DeviceRow {
  device_id: string;
  batch_idx: number;
  state: RolloutDeviceState;
  since: string;
  sent_at: string | null;
  revision: number | null;
  soak_started_at: string | null;
  baseline: string | null;
  health_requested_at: string | null;
  error_code: string | null;
  error_message: string | null;
}

function toRollout(r: RolloutRow): RolloutRecord {
  return {
    id: r.id,
    state: r.state,
    target: { kind: r.target_kind, value: r.target },
    app: r.app,
    models: JSON.parse(r.models) as RolloutModelRef[],
    policy: JSON.parse(r.policy) as RolloutPolicy,
    reason: r.reason_code ? { code: r.reason_code, message: r.reason_message ?? '' } : null,
    rolledBack: r.rolled_back === 1,
    failuresForgiven: r.failures_forgiven,
    createdBy: r.created_by,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    finishedAt: r.finished_at,
  };
}

function toDevice(r: DeviceRow): RolloutDeviceRecord {
  return {
    device: r.device_id,
    batch: r.batch_idx,
    state: r.state,
    since: r.since,
    sentAt: r.sent_at,
    revision: r.revision,
    soakStartedAt: r.soak_started_at,
    baseline: r.baseline ? (JSON.parse(r.baseline) as Baseline) : null,
    healthRequestedAt: r.health_requested_at,
    error: r.error_code ? { code: r.error_code, message: r.error_message ?? '' } : null,
  };
}

export class RolloutStore {
  constructor(private readonly db: Db) {}

  /** Inserts a rollout with its batches and devices (`batches[i]` lists batch i's devices). */
  create(
    r: Pick<RolloutRecord, 'target' | 'app' | 'models' | 'policy' | 'createdBy'>,
    batches: { canary: boolean; devices: readonly string[] }[],
    at: string,
  ): number {
    const { id } = this.db
      .prepare(
        `INSERT INTO rollouts (state, target_kind, target, app, models, policy, created_by, created_at, updated_at)
         VALUES ('running', ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
      )
      .get(
        r.target.kind,
        r.target.value,
        r.app,
        JSON.stringify(r.models),
        JSON.stringify(r.policy),
        r.createdBy,
        at,
        at,
      ) as { id: number };
    const insB = this.db.prepare(
      "INSERT INTO rollout_batches (rollout_id, idx, canary, size, state) VALUES (?, ?, ?, ?, 'pending')",
    );
    const insD = this.db.prepare(
      "INSERT INTO rollout_devices (rollout_id, device_id, batch_idx, state, since) VALUES (?, ?, ?, 'pending', ?)",
    );
    batches.forEach((b, i) => {
      insB.run(id, i, b.canary ? 1 : 0, b.devices.length);
      for (const d of b.devices) insD.run(id, d, i, at);
    });
    return id;
  }

  get(id: number): RolloutRecord | null {
    const r = this.db.prepare('SELECT * FROM rollouts WHERE id = ?').get(id) as RolloutRow | undefined;
    return r ? toRollout(r) : null;
  }

  /** Newest first. */
  list(states?: readonly RolloutState[], limit = 100): RolloutRecord[] {
    const where = states?.length ? `WHERE state IN (${states.map(() => '?').join(', ')})` : '';
    return (
      this.db
        .prepare(`SELECT * FROM rollouts ${where} ORDER BY id DESC LIMIT ?`)
        .all(...(states ?? []), limit) as RolloutRow[]
    ).map(toRollout);
  }

  /** Rollouts the scheduler still moves (running) or watches (paused), oldest first. */
  active(): RolloutRecord[] {
    return (
      this.db.prepare("SELECT * FROM rollouts WHERE state IN ('running', 'paused') ORDER BY id").all() as RolloutRow[]
    ).map(toRollout);
  }

  batches(id: number): BatchRecord[] {
    return (
      this.db
        .prepare(
          'SELECT idx, canary, size, state, sent_at, done_at FROM rollout_batches WHERE rollout_id = ? ORDER BY idx',
        )
        .all(id) as {
        idx: number;
        canary: number;
        size: number;
        state: BatchState;
        sent_at: string | null;
        done_at: string | null;
      }[]
    ).map((b) => ({
      index: b.idx,
      canary: b.canary === 1,
      size: b.size,
      state: b.state,
      sentAt: b.sent_at,
      doneAt: b.done_at,
    }));
  }

  devices(id: number): RolloutDeviceRecord[] {
    return (
      this.db
        .prepare('SELECT * FROM rollout_devices WHERE rollout_id = ? ORDER BY batch_idx, device_id')
        .all(id) as DeviceRow[]
    ).map(toDevice);
  }

  /** Devices per state, and how many counted as failures (an error is kept after a rollback). */
  counts(id: number): { byState: Record<string, number>; failed: number; total: number } {
    const rows = this.db
      .prepare(
        'SELECT state, COUNT(*) AS n, SUM(CASE WHEN error_code IS NOT NULL THEN 1 ELSE 0 END) AS failed FROM rollout_devices WHERE rollout_id = ? GROUP BY state',
      )
      .all(id) as { state: string; n: number; failed: number }[];
    const byState: Record<string, number> = {};
    let failed = 0;
    let total = 0;
    for (const r of rows) {
      byState[r.state] = r.n;
      failed += r.failed;
      total += r.n;
    }
    return { byState, failed, total };
  }

  /** How many of the rollout's devices were sent after `sinceIso` (the per-minute rate). */
  sentSince(id: number, sinceIso: string): number {
    return (
      this.db
        .prepare('SELECT COUNT(*) AS n FROM rollout_devices WHERE rollout_id = ? AND sent_at > ?')
        .get(id, sinceIso) as { n: number }
    ).n;
  }

  /**
   * For every rollout whose deployments are scoped (not done, not rolled back): the devices
   * that were sent. Its deployments are in force on these devices only.
   */
  scopes(): Map<number, Set<string>> {
    const rows = this.db
      .prepare(
        `SELECT r.id AS id, d.device_id AS device FROM rollouts r
         LEFT JOIN rollout_devices d ON d.rollout_id = r.id AND d.sent_at IS NOT NULL
         WHERE r.state <> 'done' AND r.rolled_back = 0`,
      )
      .all() as { id: number; device: string | null }[];
    const out = new Map<number, Set<string>>();
    for (const r of rows) {
      let s = out.get(r.id);
      if (!s) out.set(r.id, (s = new Set()));
      if (r.device) s.add(r.device);
    }
    return out;
  }

  /** Marks devices sent (once: a trigger refuses a second mark) and stamps their batch. */
  markSent(id: number, devices: readonly string[], at: string): void {
    const upd = this.db.prepare(
      "UPDATE rollout_devices SET sent_at = ?, state = 'sent', since = ? WHERE rollout_id = ? AND device_id = ? AND sent_at IS NULL",
    );
    for (const d of devices) {
      if (upd.run(at, at, id, d).changes !== 1)
        throw new Error(`rollout ${id}: device ${d} is not pending; refusing to send it twice`);
    }
  }

  updateDevice(id: number, device: string, p: DevicePatch): void {
    this.patch(
      'rollout_devices',
      'rollout_id = ? AND device_id = ?',
      [id, device],
      [
        ['state', p.state],
        ['since', p.since],
        ['revision', p.revision],
        ['soak_started_at', p.soakStartedAt],
        ['baseline', p.baseline === undefined ? undefined : p.baseline && JSON.stringify(p.baseline)],
        ['health_requested_at', p.healthRequestedAt],
        ['error_code', p.error === undefined ? undefined : (p.error?.code ?? null)],
        ['error_message', p.error === undefined ? undefined : (p.error?.message.slice(0, 2000) ?? null)],
      ],
    );
  }

  updateBatch(id: number, index: number, p: BatchPatch): void {
    this.patch(
      'rollout_batches',
      'rollout_id = ? AND idx = ?',
      [id, index],
      [
        ['state', p.state],
        ['sent_at', p.sentAt],
        ['done_at', p.doneAt],
      ],
    );
  }

  update(id: number, p: RolloutPatch, at: string): void {
    this.patch(
      'rollouts',
      'id = ?',
      [id],
      [
        ['updated_at', at],
        ['state', p.state],
        ['reason_code', p.reason === undefined ? undefined : (p.reason?.code ?? null)],
        ['reason_message', p.reason === undefined ? undefined : (p.reason?.message ?? null)],
        ['rolled_back', p.rolledBack === undefined ? undefined : p.rolledBack ? 1 : 0],
        ['failures_forgiven', p.failuresForgiven],
        ['finished_at', p.finishedAt],
      ],
    );
  }

  /** UPDATE of the columns whose value is not undefined (null writes NULL). */
  private patch(table: string, where: string, keys: unknown[], cols: [string, unknown][]): void {
    const set = cols.filter(([, v]) => v !== undefined);
    if (set.length === 0) return;
    this.db
      .prepare(`UPDATE ${table} SET ${set.map(([c]) => `${c} = ?`).join(', ')} WHERE ${where}`)
      .run(...set.map(([, v]) => v), ...keys);
  }

  /** Ids of the rollout's deployments (rolled back with it). */
  deploymentIds(id: number): number[] {
    return (
      this.db.prepare('SELECT id FROM deployments WHERE rollout_id = ? AND rolled_back_at IS NULL').all(id) as {
        id: number;
      }[]
    ).map((r) => r.id);
  }

  /** Active rollouts that deploy one of `models`. */
  activeFor(models: readonly string[]): RolloutRecord[] {
    return this.active().filter((r) => r.models.some((m) => models.includes(m.model)));
  }
}
