import type { Migration } from '../migrate.js';
import { ID, INT, refuse, TEXT } from './dialect.js';

const APPEND_ONLY = 'AUDIT: the audit trail is append-only';

/** PostgreSQL twin of cloud-broker/db/migrations-rollouts.ts. */
export const PG_ROLLOUTS_V1: Migration = {
  name: 'rollouts-v1',
  sql: `
    CREATE TABLE rollouts (
      id ${ID},
      state ${TEXT} NOT NULL CHECK (state IN ('running', 'paused', 'done', 'aborted')),
      target_kind ${TEXT} NOT NULL CHECK (target_kind IN ('device', 'tag', 'all')),
      target ${TEXT} NOT NULL,
      app ${TEXT},
      models ${TEXT} NOT NULL,
      policy ${TEXT} NOT NULL,
      reason_code ${TEXT},
      reason_message ${TEXT},
      rolled_back ${INT} NOT NULL DEFAULT 0 CHECK (rolled_back IN (0, 1)),
      failures_forgiven ${INT} NOT NULL DEFAULT 0,
      created_by ${TEXT} NOT NULL,
      created_at ${TEXT} NOT NULL,
      updated_at ${TEXT} NOT NULL,
      finished_at ${TEXT}
    );
    CREATE INDEX rollouts_state ON rollouts (state);
    ALTER TABLE deployments ADD COLUMN rollout_id ${INT} REFERENCES rollouts (id);
    CREATE TABLE rollout_batches (
      rollout_id ${INT} NOT NULL REFERENCES rollouts (id),
      idx ${INT} NOT NULL CHECK (idx >= 0),
      canary ${INT} NOT NULL CHECK (canary IN (0, 1)),
      size ${INT} NOT NULL CHECK (size >= 0),
      state ${TEXT} NOT NULL CHECK (state IN ('pending', 'in-progress', 'done', 'cancelled')),
      sent_at ${TEXT},
      done_at ${TEXT},
      PRIMARY KEY (rollout_id, idx)
    );
    CREATE TABLE rollout_devices (
      rollout_id ${INT} NOT NULL REFERENCES rollouts (id),
      device_id ${TEXT} NOT NULL REFERENCES devices (id),
      batch_idx ${INT} NOT NULL,
      state ${TEXT} NOT NULL CHECK (state IN ('pending', 'sent', 'soaking', 'succeeded', 'failed', 'rolled-back', 'cancelled', 'skipped')),
      since ${TEXT} NOT NULL,
      sent_at ${TEXT},
      revision ${INT},
      soak_started_at ${TEXT},
      baseline ${TEXT},
      health_requested_at ${TEXT},
      error_code ${TEXT},
      error_message ${TEXT},
      PRIMARY KEY (rollout_id, device_id),
      FOREIGN KEY (rollout_id, batch_idx) REFERENCES rollout_batches (rollout_id, idx)
    );
    CREATE INDEX rollout_devices_device ON rollout_devices (device_id);
    ${refuse(
      'rollout_devices_sent_once',
      'UPDATE OF sent_at',
      'rollout_devices',
      'ROLLOUT_STATE_CONFLICT: a rollout device is sent once',
      'OLD.sent_at IS NOT NULL AND NEW.sent_at IS DISTINCT FROM OLD.sent_at',
    )}

    CREATE TABLE audit_log (
      id ${ID},
      at ${TEXT} NOT NULL,
      actor_kind ${TEXT} NOT NULL,
      actor ${TEXT} NOT NULL,
      action ${TEXT} NOT NULL,
      rollout_id ${INT},
      details ${TEXT} NOT NULL
    );
    CREATE INDEX audit_log_at ON audit_log (at);
    CREATE INDEX audit_log_rollout ON audit_log (rollout_id);
    CREATE TABLE audit_devices (
      audit_id ${INT} NOT NULL REFERENCES audit_log (id),
      device_id ${TEXT} NOT NULL,
      PRIMARY KEY (audit_id, device_id)
    );
    CREATE INDEX audit_devices_device ON audit_devices (device_id);
    ${refuse('audit_log_append_only_update', 'UPDATE', 'audit_log', APPEND_ONLY)}
    ${refuse('audit_log_append_only_delete', 'DELETE', 'audit_log', APPEND_ONLY)}
  `,
};
