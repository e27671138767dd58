import type { Migration } from './migrate.js';

/**
 * Rollouts and the audit trail (cloud-broker/fleet/rollout-store.ts, audit-store.ts). Released
 * migrations are never edited.
 *
 * - A rollout's deployments carry its id (deployments.rollout_id). While the rollout is not
 *   done, such a deployment is in force only on the devices of its batches that were sent
 *   (rollout_devices.sent_at): that is what makes a batch a batch. A device that joins the
 *   target meanwhile is not in rollout_devices, so it keeps the old version until the rollout
 *   is done and the deployment holds for every matching device.
 * - rollout_devices.sent_at is set in the same transaction that signs and stores the device's
 *   new desired state, so after a crash a device is either sent (and its document is in the
 *   database, republished at start) or not: a batch is never sent twice.
 * - audit_log is append-only (triggers); audit_devices indexes the devices an entry names.
 */
export const ROLLOUTS_V1: Migration = {
  name: 'rollouts-v1',
  sql: `
    CREATE TABLE rollouts (
      id INTEGER PRIMARY KEY,
      state TEXT NOT NULL CHECK (state IN ('running', 'paused', 'done', 'aborted')),
      target_kind TEXT NOT NULL CHECK (target_kind IN ('device', 'tag', 'all')),
      target TEXT NOT NULL,
      app TEXT,
      models TEXT NOT NULL,             -- JSON [{model, version}]
      policy TEXT NOT NULL,             -- JSON RolloutPolicy
      reason_code TEXT,
      reason_message TEXT,
      rolled_back INTEGER NOT NULL DEFAULT 0 CHECK (rolled_back IN (0, 1)),
      failures_forgiven INTEGER NOT NULL DEFAULT 0,
      created_by TEXT NOT NULL,
      created_at TEXT NOT NULL,
      updated_at TEXT NOT NULL,
      finished_at TEXT
    );
    CREATE INDEX rollouts_state ON rollouts (state);
    ALTER TABLE deployments ADD COLUMN rollout_id INTEGER REFERENCES rollouts (id);
    CREATE TABLE rollout_batches (
      rollout_id INTEGER NOT NULL REFERENCES rollouts (id),
      idx INTEGER NOT NULL CHECK (idx >= 0),
      canary INTEGER NOT NULL CHECK (canary IN (0, 1)),
      size INTEGER NOT NULL CHECK (size >= 0),
      state TEXT NOT NULL CHECK (state IN ('pending', 'in-progress', 'done', 'cancelled')),
      sent_at TEXT,
      done_at TEXT,
      PRIMARY KEY (rollout_id, idx)
    );
    CREATE TABLE rollout_devices (
      rollout_id INTEGER NOT NULL REFERENCES rollouts (id),
      device_id TEXT NOT NULL REFERENCES devices (id),
      batch_idx INTEGER NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'soaking', 'succeeded', 'failed', 'rolled-back', 'cancelled', 'skipped')),
      since TEXT NOT NULL,
      sent_at TEXT,
      revision INTEGER,
      soak_started_at TEXT,
      baseline TEXT,                    -- JSON {startedAt, counters}: the health at soak start
      health_requested_at TEXT,
      error_code TEXT,
      error_message TEXT,
      PRIMARY KEY (rollout_id, device_id),
      FOREIGN KEY (rollout_id, batch_idx) REFERENCES rollout_batches (rollout_id, idx)
    );
    CREATE INDEX rollout_devices_device ON rollout_devices (device_id);
    CREATE TRIGGER rollout_devices_sent_once BEFORE UPDATE OF sent_at ON rollout_devices
    WHEN OLD.sent_at IS NOT NULL AND NEW.sent_at IS NOT OLD.sent_at
    BEGIN SELECT RAISE(ABORT, 'ROLLOUT_STATE_CONFLICT: a rollout device is sent once'); END;

    CREATE TABLE audit_log (
      id INTEGER PRIMARY KEY,
      at TEXT NOT NULL,
      actor_kind TEXT NOT NULL,
      actor TEXT NOT NULL,
      action TEXT NOT NULL,
      rollout_id INTEGER,
      details TEXT NOT NULL             -- JSON object
    );
    CREATE INDEX audit_log_at ON audit_log (at);
    CREATE INDEX audit_log_rollout ON audit_log (rollout_id);
    CREATE TABLE audit_devices (
      audit_id INTEGER NOT NULL REFERENCES audit_log (id),
      device_id TEXT NOT NULL,
      PRIMARY KEY (audit_id, device_id)
    );
    CREATE INDEX audit_devices_device ON audit_devices (device_id);
    CREATE TRIGGER audit_log_append_only_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'AUDIT: the audit trail is append-only'); END;
    CREATE TRIGGER audit_log_append_only_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'AUDIT: the audit trail is append-only'); END;
  `,
};
