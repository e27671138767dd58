import type { Logger } from '../../protocol/log.js';
import type { Db } from '../db/open.js';
import { eventRoutes } from '../http/event-routes.js';
import { fleetRoutes } from '../http/fleet-routes.js';
import { fleetViewRoutes } from '../http/fleet-view-routes.js';
import { rolloutRoutes } from '../http/rollout-routes.js';
import { trustRoutes } from '../http/trust-routes.js';
import type { Router } from '../http/router.js';
import { FleetView } from './fleet-view.js';
import { startFleetServices, type FleetServices, type FleetServicesOptions } from './start.js';

/**
 * The two calls startCloud makes (cloud-broker/cloud.ts): add the fleet's routes before the HTTP
 * server listens, then start the broker and the fleet once the HTTP URL is known (it goes into
 * agent.json and the signed blob URLs). Until `start` resolves the routes answer 503.
 */
export function wireFleet(
  router: Router,
  db: Db,
): {
  start(
    o: Omit<FleetServicesOptions, 'db' | 'dataDir' | 'log'> & { db: Db; dataDir: string; log: Logger },
  ): Promise<FleetServices>;
} {
  let services: FleetServices | null = null;
  let view: FleetView | null = null;
  router.add(
    ...fleetRoutes(
      () => services?.fleet ?? null,
      () => services?.rollouts ?? null,
    ),
    ...rolloutRoutes(() => services?.rollouts ?? null),
    ...trustRoutes(() => services),
    // The web page's read views and live events (cloud-broker/ui/, docs/ui.md).
    ...fleetViewRoutes(
      db,
      () => services?.fleet ?? null,
      () => view,
    ),
    ...eventRoutes(() => services?.fleet ?? null),
  );
  return {
    async start(o) {
      const started = await startFleetServices(o);
      services = started;
      view = new FleetView(started.fleet);
      return {
        ...started,
        close: async () => {
          view?.close();
          await started.close();
        },
      };
    },
  };
}
