import { parseModelId } from '../../protocol/ids.js';
import { authorizeOwner } from '../auth/index.js';
import { getApp, parseAppBody, putApp } from '../catalog/index.js';
import type { Db } from '../db/open.js';
import { readJsonBody } from './body.js';
import type { Route } from './router.js';

/** `GET|PUT /v1/apps/:owner/:app`: the catalog's copy of an app's model list. */
export function appRoutes(db: Db): Route[] {
  return [
    {
      method: 'GET',
      path: '/v1/apps/:owner/:app',
      access: 'any',
      handler: async ({ params, principal }) => {
        const { owner, name } = parseModelId(`${params.owner}/${params.app}`, 'app');
        return { body: getApp(db, principal!, owner, name) };
      },
    },
    {
      method: 'PUT',
      path: '/v1/apps/:owner/:app',
      access: 'write',
      handler: async ({ req, params, principal, log }) => {
        const { owner, name } = parseModelId(`${params.owner}/${params.app}`, 'app');
        authorizeOwner(principal!, owner);
        const models = parseAppBody(await readJsonBody(req));
        const app = putApp(db, principal!, owner, name, models);
        log.info({ app: app.id, models: Object.keys(models).length }, 'app models stored');
        return { body: app };
      },
    },
  ];
}
