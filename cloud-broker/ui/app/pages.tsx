import { AuditPage } from './audit';
import { DeployPage } from './deploy';
import type { Route } from './route';
import { RolloutPage, RolloutsPage } from './rollouts';

/**
 * The rollout, deploy and audit views, which build on the cloud's staged rollouts. They join the
 * navigation here so the shell stays small.
 */
export const extraNav: [string, string][] = [
  ['rollouts', 'Rollouts'],
  ['deploy', 'Deploy'],
  ['audit', 'Audit'],
];

export function extraPages(view: string | undefined, rest: string[], route: Route) {
  if (view === 'rollouts') return rest[0] ? <RolloutPage id={rest[0]} /> : <RolloutsPage />;
  if (view === 'deploy') return <DeployPage route={route} />;
  if (view === 'audit') return <AuditPage route={route} />;
  return null;
}
