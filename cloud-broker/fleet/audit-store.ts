import type { Db } from '../db/open.js';
import type { AuditEntry } from './rollout-types.js';

/**
 * The audit trail's SQL (cloud-broker/db/migrations-rollouts.ts): append-only rows of who did
 * what to the fleet, and when. Callers append inside the transaction of the change itself, so
 * a change without its entry (or an entry without its change) cannot be committed.
 */
export interface Actor {
  /** admin | user | device (a token's kind), or system for the cloud's own steps. */
  kind: string;
  name: string;
}

export const SYSTEM_ACTOR: Actor = { kind: 'system', name: 'cloud' };
export const SCHEDULER_ACTOR: Actor = { kind: 'system', name: 'scheduler' };

export interface AuditQuery {
  since?: string;
  device?: string;
  rollout?: number;
  limit?: number;
}

export const AUDIT_LIMIT_DEFAULT = 1000;
export const AUDIT_LIMIT_MAX = 10_000;

interface Row {
  id: number;
  at: string;
  actor_kind: string;
  actor: string;
  action: string;
  rollout_id: number | null;
  details: string;
}

export class AuditStore {
  constructor(private readonly db: Db) {}

  append(
    actor: Actor,
    action: string,
    o: { rollout?: number | null; devices?: readonly string[]; details?: Record<string, unknown>; at?: string } = {},
  ): number {
    const { id } = this.db
      .prepare(
        'INSERT INTO audit_log (at, actor_kind, actor, action, rollout_id, details) VALUES (?, ?, ?, ?, ?, ?) RETURNING id',
      )
      .get(
        o.at ?? new Date().toISOString(),
        actor.kind,
        actor.name,
        action,
        o.rollout ?? null,
        JSON.stringify(o.details ?? {}),
      ) as { id: number };
    const ins = this.db.prepare('INSERT INTO audit_devices (audit_id, device_id) VALUES (?, ?) ON CONFLICT DO NOTHING');
    for (const d of o.devices ?? []) ins.run(id, d);
    return id;
  }

  /** Oldest first; `since` is exclusive so a caller can page with the last entry's time. */
  query(q: AuditQuery = {}): AuditEntry[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (q.since !== undefined) {
      where.push('a.at > ?');
      args.push(q.since);
    }
    if (q.rollout !== undefined) {
      where.push('a.rollout_id = ?');
      args.push(q.rollout);
    }
    if (q.device !== undefined) {
      where.push('a.id IN (SELECT audit_id FROM audit_devices WHERE device_id = ?)');
      args.push(q.device);
    }
    const limit = Math.min(q.limit ?? AUDIT_LIMIT_DEFAULT, AUDIT_LIMIT_MAX);
    const rows = this.db
      .prepare(
        `SELECT a.* FROM audit_log a ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY a.id LIMIT ?`,
      )
      .all(...args, limit) as Row[];
    const devs = this.db.prepare('SELECT device_id FROM audit_devices WHERE audit_id = ? ORDER BY device_id');
    return rows.map((r) => ({
      id: r.id,
      at: r.at,
      actor: { kind: r.actor_kind, name: r.actor },
      action: r.action,
      rollout: r.rollout_id,
      devices: (devs.all(r.id) as { device_id: string }[]).map((d) => d.device_id),
      details: JSON.parse(r.details) as Record<string, unknown>,
    }));
  }
}
