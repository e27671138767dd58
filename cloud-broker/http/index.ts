import type { Logger } from '../../protocol/log.js';
import type { BlobStore } from '../artifacts/index.js';
import type { Db } from '../db/open.js';
import type { CloudLimits } from '../limits.js';
import { appRoutes } from './app-routes.js';
import { blobRoutes } from './blob-routes.js';
import { modelRoutes } from './model-routes.js';
import { Router } from './router.js';
import { systemRoutes } from './system-routes.js';

export { Router, type Route, type RouteContext, type Reply, type Handler } from './router.js';
export { createApiServer, type ApiServerDeps } from './server.js';
export { readJsonBody, JSON_BODY_LIMIT } from './body.js';
export { sendJson, sendError } from './respond.js';

/** The catalog's routes. Other parts (the fleet) add theirs to the returned router. */
export function catalogRouter(deps: {
  db: Db;
  blobs: BlobStore;
  version: string;
  log?: Logger;
  limits?: Pick<CloudLimits, 'uploads'>;
  /** This replica's name in the fleet-leader lease (GET /v1/health). */
  replica?: string;
}): Router {
  return new Router().add(
    ...systemRoutes(deps.db, deps.version, deps.replica),
    ...blobRoutes(deps.db, deps.blobs, deps.limits?.uploads),
    ...modelRoutes(deps.db, deps.blobs),
    ...appRoutes(deps.db),
  );
}
