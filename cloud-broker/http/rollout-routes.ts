import { OutpostError } from '../../protocol/errors/index.js';
import { parseDeviceId } from '../../protocol/topics.js';
import type { Principal } from '../auth/index.js';
import { AUDIT_LIMIT_MAX, SYSTEM_ACTOR, type Actor } from '../fleet/audit-store.js';
import type { Fleet } from '../fleet/fleet.js';
import { planDeploy } from '../fleet/plan.js';
import { parseRolloutPolicy } from '../fleet/rollout-policy.js';
import { ROLLOUT_STATES, type RolloutState } from '../fleet/rollout-types.js';
import type { Rollouts } from '../fleet/rollouts.js';
import { readJsonBody } from './body.js';
import { parseSpecBody, parseTargetBody } from './fleet-routes.js';
import type { Route } from './router.js';

/**
 * Rollouts, plans and the audit trail (docs/http-api.md, "Rollouts"). Admin token, like the rest
 * of the fleet: these change or reveal what runs on devices.
 *
 *   POST /v1/plans                  {model | app, target, rollout?} -> {plan}
 *   GET  /v1/rollouts               ?state=a,b&limit=N              -> {rollouts: RolloutSummary[]}
 *   GET  /v1/rollouts/:id                                           -> {rollout: Rollout}
 *   POST /v1/rollouts/:id/pause | resume | abort {keep?}            -> {rollout: Rollout}
 *   GET  /v1/audit                  ?since&device&rollout&limit     -> {entries: AuditEntry[]}
 */
export function actorOf(p: Principal | null): Actor {
  return p ? { kind: p.kind, name: p.subject } : SYSTEM_ACTOR;
}

export function rolloutsOf(get: () => Rollouts | null): Rollouts {
  const r = get();
  if (!r)
    throw new OutpostError(
      'BROKER_UNREACHABLE',
      'the fleet is still starting (broker not connected); retry in a moment',
    );
  return r;
}

function idOf(text: string): number {
  const id = /^[1-9]\d{0,15}$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(id))
    throw new OutpostError('ROLLOUT_NOT_FOUND', `"${text}" is not a rollout id (a positive integer)`, {
      rollout: text,
    });
  return id;
}

function limitOf(url: URL, max: number, dflt: number): number {
  const v = url.searchParams.get('limit');
  if (v === null) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1 || n > max)
    throw new OutpostError('BAD_REQUEST', `limit must be an integer from 1 to ${max}, got "${v}"`, { key: 'limit' });
  return n;
}

export function rolloutRoutes(getRollouts: () => Rollouts | null): Route[] {
  const rollouts = (): Rollouts => rolloutsOf(getRollouts);
  const fleet = (): Fleet => rollouts().fleet;
  const control = (verb: 'pause' | 'resume' | 'abort'): Route => ({
    method: 'POST',
    path: `/v1/rollouts/:id/${verb}`,
    access: 'admin',
    handler: async ({ req, params, principal }) => {
      const id = idOf(params.id);
      const actor = actorOf(principal);
      if (verb === 'abort') {
        const b = await readJsonBody(req);
        if (b.keep !== undefined && typeof b.keep !== 'boolean')
          throw new OutpostError('BAD_REQUEST', 'keep must be true or false', { key: 'keep' });
        return { body: { rollout: await rollouts().abort(id, actor, b.keep === true) } };
      }
      return { body: { rollout: await rollouts()[verb](id, actor) } };
    },
  });
  return [
    {
      method: 'POST',
      path: '/v1/plans',
      access: 'admin',
      handler: async ({ req }) => {
        const b = await readJsonBody(req);
        const spec = parseSpecBody(b);
        const target = parseTargetBody(b.target);
        const policy = b.rollout === undefined ? null : parseRolloutPolicy(b.rollout);
        return { body: { plan: planDeploy(fleet(), spec, target, policy) } };
      },
    },
    {
      method: 'GET',
      path: '/v1/rollouts',
      access: 'admin',
      handler: async ({ url }) => {
        const raw = url.searchParams.get('state');
        const states = raw ? raw.split(',') : undefined;
        for (const s of states ?? [])
          if (!ROLLOUT_STATES.includes(s as RolloutState))
            throw new OutpostError('BAD_REQUEST', `state "${s}" is not one of ${ROLLOUT_STATES.join(', ')}`, {
              key: 'state',
            });
        return { body: { rollouts: rollouts().list(states as RolloutState[] | undefined, limitOf(url, 1000, 100)) } };
      },
    },
    {
      method: 'GET',
      path: '/v1/rollouts/:id',
      access: 'admin',
      handler: async ({ params }) => ({ body: { rollout: rollouts().view(idOf(params.id)) } }),
    },
    control('pause'),
    control('resume'),
    control('abort'),
    {
      method: 'GET',
      path: '/v1/audit',
      access: 'admin',
      handler: async ({ url }) => {
        const since = url.searchParams.get('since') ?? undefined;
        if (since !== undefined && Number.isNaN(Date.parse(since)))
          throw new OutpostError('BAD_REQUEST', `since must be an ISO 8601 time, got "${since}"`, { key: 'since' });
        const device = url.searchParams.get('device') ?? undefined;
        const rollout = url.searchParams.get('rollout');
        return {
          body: {
            entries: fleet().audit.query({
              since: since === undefined ? undefined : new Date(since).toISOString(),
              device: device === undefined ? undefined : parseDeviceId(device),
              rollout: rollout === null ? undefined : idOf(rollout),
              limit: limitOf(url, AUDIT_LIMIT_MAX, 1000),
            }),
          },
        };
      },
    },
  ];
}
