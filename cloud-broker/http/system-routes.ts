import type { Db } from '../db/open.js';
import { createUser, parseUserName } from '../catalog/index.js';
import { AuditStore } from '../fleet/audit-store.js';
import { readJsonBody } from './body.js';
import type { Route } from './router.js';

/** `/v1/health`, `/v1/whoami`, `/v1/stats`, `/v1/users`. */
export function systemRoutes(db: Db, version: string): Route[] {
  return [
    { method: 'GET', path: '/v1/health', access: 'none', handler: async () => ({ body: { ok: true, version } }) },
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
