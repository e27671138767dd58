import type { Db } from '../db/open.js';
import type { Deployment, DeviceRecord, Target, TargetKind } from './types.js';

/**
 * SQL for the fleet's tables (cloud-broker/db/migrations-fleet.ts). No policy here: callers
 * validate ids first and own the transactions that span several calls.
 */
interface DeviceRow {
  id: string;
  created_at: string;
  removed_at: string | null;
  revision: number;
  status: string | null;
  status_at: string | null;
  reported_at: string | null;
}

interface DeploymentRow {
  id: number;
  target_kind: TargetKind;
  target: string;
  model: string;
  version: number;
  app: string | null;
  created_at: string;
  rolled_back_at: string | null;
  rollout_id: number | null;
}

const now = (): string => new Date().toISOString();
/** Rows per multi-row UPDATE (3 parameters each) and ids per IN list: far below every engine's bound. */
const UPDATE_ROWS = 200;
const LIVE_IDS = 500;
/** How soon a background write of reports that failed is tried again. */
const FLUSH_RETRY_MS = 1_000;

function toDeployment(r: DeploymentRow): Deployment {
  return {
    id: r.id,
    target: { kind: r.target_kind, value: r.target },
    model: r.model,
    version: r.version,
    app: r.app,
    createdAt: r.created_at,
    rolledBackAt: r.rolled_back_at,
    rolloutId: r.rollout_id,
  };
}

export class FleetStore {
  /**
   * Reports wait here for one event-loop turn and are then written in one transaction: every
   * UPDATE outside a transaction is its own WAL commit (an fsync, synchronous=FULL) on the main
   * thread, and a fleet converging sends its reports in bursts. Only the latest report of a
   * device matters, so a newer one replaces a queued one. Every method that reads or resets the
   * `reported` columns flushes first, so callers never see the queue. A crash can lose at most
   * this one turn's reports, which the broker holds retained (and which a device sends again
   * with its next change); the broker acknowledges a report before the cloud stores it anyway.
   */
  private readonly pendingReports = new Map<string, { json: string; at: string }>();
  /**
   * Statuses (birth, Last Will) wait in the same way and for the same reason, plus one: every
   * CONNECT brings a birth message, so a reconnect storm is thousands of status writes, and on
   * PostgreSQL each one alone was a transaction of five round trips blocking the event loop.
   */
  private readonly pendingStatuses = new Map<string, { status: 'online' | 'offline'; at: string }>();
  private flushQueued = false;
  private retryTimer: NodeJS.Timeout | null = null;

  /**
   * Told of a write of queued reports that failed in the background (a busy or unreachable
   * database): the rows are queued again and retried, so the failure costs time, not reports.
   */
  onFlushError: (err: unknown) => void = () => {};

  /**
   * Run inside the transaction that writes reports and statuses; false drops the write. The
   * replica's lease fence when several replicas share the database (cloud-broker/fleet/run-once.ts).
   */
  fence: () => boolean = () => true;

  constructor(readonly db: Db) {}

  getDevice(id: string): DeviceRecord | null {
    this.flushReports();
    const r = this.db
      .prepare('SELECT id, created_at, removed_at, revision, status, status_at, reported_at FROM devices WHERE id = ?')
      .get(id) as DeviceRow | undefined;
    return r ? this.toDevice(r) : null;
  }

  listDevices(includeRemoved = false): DeviceRecord[] {
    this.flushReports();
    const rows = this.db
      .prepare(
        `SELECT id, created_at, removed_at, revision, status, status_at, reported_at FROM devices ${includeRemoved ? '' : 'WHERE removed_at IS NULL'} ORDER BY id`,
      )
      .all() as DeviceRow[];
    // Every device's tags in one statement, not one per device: on PostgreSQL each statement is
    // a round trip on the event loop, and the fleet page, the rollout status and a deploy list all.
    const tags = new Map<string, string[]>();
    for (const t of this.db.prepare('SELECT device_id, tag FROM device_tags ORDER BY device_id, tag').all() as {
      device_id: string;
      tag: string;
    }[]) {
      const list = tags.get(t.device_id);
      if (list) list.push(t.tag);
      else tags.set(t.device_id, [t.tag]);
    }
    return rows.map((r) => this.toDevice(r, tags.get(r.id) ?? []));
  }

  /** Every live device's stored report and signed document (JSON text), in one statement. */
  documentsOfAll(): Map<string, { reported: string | null; desired: string | null }> {
    this.flushReports();
    const rows = this.db.prepare('SELECT id, reported, desired_doc FROM devices WHERE removed_at IS NULL').all() as {
      id: string;
      reported: string | null;
      desired_doc: string | null;
    }[];
    return new Map(rows.map((r) => [r.id, { reported: r.reported, desired: r.desired_doc }]));
  }

  private toDevice(r: DeviceRow, tags = this.tagsOf(r.id)): DeviceRecord {
    return {
      id: r.id,
      tags,
      createdAt: r.created_at,
      removedAt: r.removed_at,
      revision: r.revision,
      status: r.status === 'online' || r.status === 'offline' ? r.status : null,
      statusAt: r.status_at,
      reportedAt: r.reported_at,
    };
  }

  tagsOf(id: string): string[] {
    return (
      this.db.prepare('SELECT tag FROM device_tags WHERE device_id = ? ORDER BY tag').all(id) as { tag: string }[]
    ).map((r) => r.tag);
  }

  /** Inserts a device, or re-activates a removed one keeping its revision counter. */
  upsertDevice(id: string, tags: readonly string[]): void {
    this.flushReports();
    this.db
      .prepare(
        'INSERT INTO devices (id, created_at) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET removed_at = NULL, reported = NULL, reported_at = NULL, status = NULL, status_at = NULL',
      )
      .run(id, now());
    this.db.prepare('DELETE FROM device_tags WHERE device_id = ?').run(id);
    this.addTags(id, tags);
  }

  markRemoved(id: string): void {
    this.flushReports();
    // The revision stays (it only grows); the document goes, so re-provisioning signs a new one.
    this.db
      .prepare(
        'UPDATE devices SET removed_at = ?, desired_doc = NULL, desired_prev_doc = NULL, desired_digest = NULL, desired_expires = NULL WHERE id = ?',
      )
      .run(now(), id);
    this.db.prepare('DELETE FROM device_tags WHERE device_id = ?').run(id);
  }

  addTags(id: string, tags: readonly string[]): void {
    const ins = this.db.prepare('INSERT INTO device_tags (device_id, tag) VALUES (?, ?) ON CONFLICT DO NOTHING');
    for (const t of tags) ins.run(id, t);
  }

  removeTags(id: string, tags: readonly string[]): void {
    const del = this.db.prepare('DELETE FROM device_tags WHERE device_id = ? AND tag = ?');
    for (const t of tags) del.run(id, t);
  }

  insertDeployment(
    target: Target,
    model: string,
    version: number,
    app: string | null,
    rolloutId: number | null = null,
  ): Deployment {
    const createdAt = now();
    const { id } = this.db
      .prepare(
        'INSERT INTO deployments (target_kind, target, model, version, app, created_at, rollout_id) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id',
      )
      .get(target.kind, target.value, model, version, app, createdAt, rolloutId) as { id: number };
    return { id, target, model, version, app, createdAt, rolledBackAt: null, rolloutId };
  }

  /** Live (not rolled back) deployments, oldest first. */
  liveDeployments(): Deployment[] {
    return (
      this.db.prepare('SELECT * FROM deployments WHERE rolled_back_at IS NULL ORDER BY id').all() as DeploymentRow[]
    ).map(toDeployment);
  }

  /** Live deployments of one model to exactly this target, newest first. */
  liveDeploymentsFor(target: Target, model: string): Deployment[] {
    return (
      this.db
        .prepare(
          'SELECT * FROM deployments WHERE rolled_back_at IS NULL AND target_kind = ? AND target = ? AND model = ? ORDER BY id DESC',
        )
        .all(target.kind, target.value, model) as DeploymentRow[]
    ).map(toDeployment);
  }

  markRolledBack(ids: readonly number[]): void {
    const upd = this.db.prepare('UPDATE deployments SET rolled_back_at = ? WHERE id = ?');
    const at = now();
    for (const id of ids) upd.run(at, id);
  }

  /**
   * Stores freshly signed documents and their revisions, UPDATE_ROWS devices per statement (a
   * deploy to the whole fleet signs every device in one transaction; an UPDATE each was a round
   * trip each on PostgreSQL); the trigger refuses a lower revision. The document a row replaces
   * becomes the previous one only when the model list changed (a re-sign at half-life keeps the
   * older previous), because a device may read what either names.
   */
  saveDesiredMany(rows: { id: string; revision: number; doc: string; digest: string; expires: string }[]): void {
    for (let i = 0; i < rows.length; i += UPDATE_ROWS) {
      const part = rows.slice(i, i + UPDATE_ROWS);
      this.db
        .prepare(
          `UPDATE devices SET revision = CAST(v.column2 AS BIGINT), desired_doc = v.column3, desired_expires = v.column5,
             desired_prev_doc = CASE WHEN devices.desired_digest IS NOT DISTINCT FROM v.column4 THEN devices.desired_prev_doc ELSE devices.desired_doc END,
             desired_digest = v.column4
           FROM (VALUES ${part.map(() => '(?, ?, ?, ?, ?)').join(', ')}) AS v WHERE devices.id = v.column1`,
        )
        .run(...part.flatMap((r) => [r.id, String(r.revision), r.doc, r.digest, r.expires]));
    }
  }

  /** desiredOf for every device, in one statement. */
  desiredOfAll(): Map<string, { doc: string | null; digest: string | null; expires: string | null; revision: number }> {
    const rows = this.db
      .prepare(
        'SELECT id, desired_doc AS doc, desired_digest AS digest, desired_expires AS expires, revision FROM devices',
      )
      .all() as { id: string; doc: string | null; digest: string | null; expires: string | null; revision: number }[];
    return new Map(rows.map(({ id, ...r }) => [id, r]));
  }

  /** The current and previous signed documents of a device (for least-privilege reads). */
  desiredDocs(id: string): string[] {
    const r = this.db
      .prepare('SELECT desired_doc AS cur, desired_prev_doc AS prev FROM devices WHERE id = ? AND removed_at IS NULL')
      .get(id) as { cur: string | null; prev: string | null } | undefined;
    return [r?.cur, r?.prev].filter((d): d is string => typeof d === 'string');
  }

  desiredOf(
    id: string,
  ): { doc: string | null; digest: string | null; expires: string | null; revision: number } | null {
    const r = this.db
      .prepare(
        'SELECT desired_doc AS doc, desired_digest AS digest, desired_expires AS expires, revision FROM devices WHERE id = ?',
      )
      .get(id) as { doc: string | null; digest: string | null; expires: string | null; revision: number } | undefined;
    return r ?? null;
  }

  /** Every active device's last signed document, for republication at start. */
  allDesiredDocs(): { id: string; doc: string }[] {
    return this.db
      .prepare(
        'SELECT id, desired_doc AS doc FROM devices WHERE removed_at IS NULL AND desired_doc IS NOT NULL ORDER BY id',
      )
      .all() as { id: string; doc: string }[];
  }

  /** Queues the device's latest report; written at the end of this event-loop turn (see above). */
  saveReported(id: string, json: string, at: string): void {
    this.pendingReports.set(id, { json, at });
    this.queueFlush();
  }

  /** Queues the device's latest status; written with the reports (see above). */
  saveStatus(id: string, status: 'online' | 'offline', at: string): void {
    this.pendingStatuses.set(id, { status, at });
    this.queueFlush();
  }

  private queueFlush(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(() => this.flushInBackground());
  }

  /** The event-loop turn's flush: an error here has no caller to reach, so it is reported and retried. */
  private flushInBackground(): void {
    try {
      this.flushReports();
    } catch (err) {
      this.onFlushError(err);
      if (this.retryTimer) return;
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.flushInBackground();
      }, FLUSH_RETRY_MS);
      this.retryTimer.unref();
    }
  }

  /**
   * Writes the queued reports and statuses in one transaction, a few multi-row UPDATEs rather
   * than one per device (each statement is a round trip on PostgreSQL); a removed or unknown
   * device's are dropped by the UPDATE itself.
   */
  flushReports(): void {
    this.flushQueued = false;
    // After close (a report that raced the shutdown) there is nothing left to write to.
    if ((this.pendingReports.size === 0 && this.pendingStatuses.size === 0) || !this.db.open) return;
    const reports = [...this.pendingReports].map(([id, r]) => [id, r.json, r.at]);
    const statuses = [...this.pendingStatuses].map(([id, r]) => [id, r.status, r.at]);
    this.pendingReports.clear();
    this.pendingStatuses.clear();
    try {
      this.db.transaction(() => {
        // Dropped when this replica lost the lease meanwhile: the new leader re-reads the retained reports.
        if (!this.fence()) return;
        this.updateMany('reported', 'reported_at', reports);
        this.updateMany('status', 'status_at', statuses);
      })();
    } catch (err) {
      // Nothing was written (one transaction): queue the rows again unless a newer one came meanwhile.
      for (const [id, json, at] of reports) if (!this.pendingReports.has(id)) this.pendingReports.set(id, { json, at });
      for (const [id, status, at] of statuses)
        if (!this.pendingStatuses.has(id)) this.pendingStatuses.set(id, { status: status as 'online' | 'offline', at });
      throw err;
    }
  }

  /** `UPDATE devices SET a = ?, b = ? WHERE id = ?` for many rows, UPDATE_ROWS per statement. */
  private updateMany(a: string, b: string, rows: string[][]): void {
    for (let i = 0; i < rows.length; i += UPDATE_ROWS) {
      const part = rows.slice(i, i + UPDATE_ROWS);
      // VALUES names its columns column1..3 on SQLite and PostgreSQL alike.
      this.db
        .prepare(
          `UPDATE devices SET ${a} = v.column2, ${b} = v.column3 FROM (VALUES ${part.map(() => '(?, ?, ?)').join(', ')}) AS v
           WHERE devices.id = v.column1 AND devices.removed_at IS NULL`,
        )
        .run(...part.flat());
    }
  }

  /** Which of `ids` are provisioned and not removed: one statement per LIVE_IDS ids. */
  liveIds(ids: readonly string[]): Set<string> {
    const out = new Set<string>();
    for (let i = 0; i < ids.length; i += LIVE_IDS) {
      const part = ids.slice(i, i + LIVE_IDS);
      const rows = this.db
        .prepare(`SELECT id FROM devices WHERE removed_at IS NULL AND id IN (${part.map(() => '?').join(', ')})`)
        .all(...part) as { id: string }[];
      for (const r of rows) out.add(r.id);
    }
    return out;
  }

  reportedOf(id: string): string | null {
    this.flushReports();
    const r = this.db.prepare('SELECT reported FROM devices WHERE id = ?').get(id) as
      | { reported: string | null }
      | undefined;
    return r?.reported ?? null;
  }
}
