import type { Route } from './route';

/**
 * The rollout, deploy and audit views, which build on the cloud's staged rollouts. They join the
 * navigation here so the shell does not change when they are added.
 */
export const extraNav: [string, string][] = [];

export function extraPages(_view: string | undefined, _rest: string[], _route: Route) {
  return null;
}
