import type { Db } from '../db/open.js';
import { createUser, parseUserName } from '../catalog/index.js';
import { FLEET_LEADER, LeaseStore } from '../db/lease.js';
import { AuditStore } from '../fleet/audit-store.js';
import { readJsonBody } from './body.js';
import type { Route } from './router.js';

/**
 * `/v1/health`, `/v1/whoami`, `/v1/stats`, `/v1/users`. Health also says which replica this is and which one
 * leads the fleet's run-once work (docs/scale.md), as a balancer or an operator sees it; like a
 * database's health route it is open, and it names processes, never secrets.
 */
export function systemRoutes(db: Db, version: string, replica?: string): Route[] {
  const leases = new LeaseStore(db);
  return [
    {
      method: 'GET',
      path: '/v1/health',
      access: 'none',
      handler: async () => {
        const l = leases.read(FLEET_LEADER);
        const live = l !== null && l.holder !== '' && l.expiresAt > Date.now();
        const leader = {
          replica: live ? l.holder : null,
          epoch: l?.epoch ?? 0,
          expiresAt: live ? new Date(l.expiresAt).toISOString() : null,
        };
        return {
          body: { ok: true, version, replica: replica ?? null, leader, isLeader: live && l.holder === replica },
        };
      },
    },
    {
      method: 'GET',
      path: '/v1/whoami',
      access: 'any',
      handler: async ({ principal }) => ({ body: { user: principal!.subject, kind: principal!.kind } }),
    },
    {
      // This process's counters (each replica answers for itself): what a capacity plan reads,
      // e.g. database statements per device in bench/scale.ts.
      method: 'GET',
      path: '/v1/stats',
      access: 'admin',
      handler: async () => ({ body: { database: { engine: db.engine, ...db.stats() } } }),
    },
    {
      method: 'POST',
      path: '/v1/users',
      access: 'admin',
      handler: async ({ req, log, principal }) => {
        const name = parseUserName(await readJsonBody(req));
        const created = db.transaction(() => {
          const u = createUser(db, name);
          new AuditStore(db).append({ kind: principal!.kind, name: principal!.subject }, 'user.create', {
            details: { user: name, token: 'created' },
          });
          return u;
        })();
        log.info({ user: name }, 'user created');
        return { status: 201, body: created };
      },
    },
  ];
}
