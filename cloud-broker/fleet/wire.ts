import type { Logger } from '../../protocol/log.js';
import type { Db } from '../db/open.js';
import { fleetRoutes } from '../http/fleet-routes.js';
import { rolloutRoutes } from '../http/rollout-routes.js';
import { trustRoutes } from '../http/trust-routes.js';
import type { Router } from '../http/router.js';
import { startFleetServices, type FleetServices, type FleetServicesOptions } from './start.js';

/**
 * The two calls startCloud makes (cloud-broker/cloud.ts): add the fleet's routes before the HTTP
 * server listens, then start the broker and the fleet once the HTTP URL is known (it goes into
 * agent.json and the signed blob URLs). Until `start` resolves the routes answer 503.
 */
export function wireFleet(router: Router): {
  start(
    o: Omit<FleetServicesOptions, 'db' | 'dataDir' | 'log'> & { db: Db; dataDir: string; log: Logger },
  ): Promise<FleetServices>;
} {
  let services: FleetServices | null = null;
  router.add(
    ...fleetRoutes(
      () => services?.fleet ?? null,
      () => services?.rollouts ?? null,
    ),
    ...rolloutRoutes(() => services?.rollouts ?? null),
    ...trustRoutes(() => services),
  );
  return {
    async start(o) {
      services = await startFleetServices(o);
      return services;
    },
  };
}
