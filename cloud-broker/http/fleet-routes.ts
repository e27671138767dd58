import { OutpostError } from '../../protocol/errors/index.js';
import { formatModelId, parseModelId } from '../../protocol/ids.js';
import { COMMANDS, type CommandName } from '../../protocol/topics.js';
import type { Fleet } from '../fleet/fleet.js';
import type { DeploySpec } from '../fleet/fleet.js';
import type { Target } from '../fleet/types.js';
import type { Rollouts } from '../fleet/rollouts.js';
import { parseRolloutPolicy } from '../fleet/rollout-policy.js';
import { readJsonBody } from './body.js';
import { actorOf, rolloutsOf } from './rollout-routes.js';
import type { Route } from './router.js';

/**
 * The fleet's routes (docs/http-api.md, "Fleet"). All need the admin token: provisioning hands
 * out device credentials and a deployment changes what runs on devices.
 *
 *   POST   /v1/devices               {id, tags?}            -> 201 {device, agentConfig}
 *   GET    /v1/devices                                      -> {devices}
 *   GET    /v1/devices/:id                                  -> {device, desired, reported, telemetry}
 *   DELETE /v1/devices/:id                                  -> {id, removed: true}
 *   PATCH  /v1/devices/:id/tags      {add?, remove?}        -> {device}
 *   POST   /v1/deployments           {model | app, target, rollout?} -> 201 {target, deployments, devices, rollout?}
 *   POST   /v1/rollbacks             {model, target}        -> {target, devices, from, to}
 *   POST   /v1/devices/:id/commands  {command, model?}      -> 202 {device, command, nonce, expires, keyid}
 *   GET    /v1/rollout                                      -> {devices: RolloutDevice[]}
 *
 * `target` is {kind: 'device'|'tag'|'all', value?}.
 */
export function fleetRoutes(getFleet: () => Fleet | null, getRollouts: () => Rollouts | null = () => null): Route[] {
  const fleet = (): Fleet => {
    const f = getFleet();
    if (!f)
      throw new OutpostError(
        'BROKER_UNREACHABLE',
        'the fleet is still starting (broker not connected); retry in a moment',
      );
    return f;
  };
  return [
    {
      method: 'POST',
      path: '/v1/devices',
      access: 'admin',
      handler: async ({ req, principal }) => {
        const b = await readJsonBody(req);
        const tags = b.tags === undefined ? [] : b.tags;
        if (!Array.isArray(tags))
          throw new OutpostError('TAG_INVALID', 'tags must be an array of strings', { key: 'tags' });
        return { status: 201, body: await fleet().provision(b.id as string, tags as string[], actorOf(principal)) };
      },
    },
    {
      method: 'GET',
      path: '/v1/devices',
      access: 'admin',
      handler: async () => ({ body: { devices: fleet().listDevices() } }),
    },
    {
      method: 'GET',
      path: '/v1/devices/:id',
      access: 'admin',
      handler: async ({ params }) => {
        const f = fleet();
        const device = f.getDevice(params.id);
        return {
          body: {
            device,
            desired: f.signedOf(device.id),
            reported: f.reportedOf(device.id),
            telemetry: f.telemetryOf(device.id),
            commands: f.answersOf(device.id),
          },
        };
      },
    },
    {
      method: 'DELETE',
      path: '/v1/devices/:id',
      access: 'admin',
      handler: async ({ params, principal }) => {
        await fleet().remove(params.id, actorOf(principal));
        return { body: { id: params.id, removed: true } };
      },
    },
    {
      method: 'PATCH',
      path: '/v1/devices/:id/tags',
      access: 'admin',
      handler: async ({ req, params, principal }) => {
        const b = await readJsonBody(req);
        const list = (v: unknown, key: string): string[] => {
          if (v === undefined) return [];
          if (!Array.isArray(v)) throw new OutpostError('TAG_INVALID', `${key} must be an array of tags`, { key });
          return v as string[];
        };
        return {
          body: {
            device: await fleet().tag(params.id, list(b.add, 'add'), list(b.remove, 'remove'), actorOf(principal)),
          },
        };
      },
    },
    {
      method: 'POST',
      path: '/v1/deployments',
      access: 'admin',
      handler: async ({ req, principal }) => {
        const b = await readJsonBody(req);
        const spec = parseSpecBody(b);
        const target = parseTargetBody(b.target);
        if (b.rollout !== undefined) {
          const policy = parseRolloutPolicy(b.rollout);
          return { status: 201, body: await rolloutsOf(getRollouts).create(spec, target, policy, actorOf(principal)) };
        }
        return { status: 201, body: await fleet().deploy(spec, target, actorOf(principal)) };
      },
    },
    {
      method: 'POST',
      path: '/v1/rollbacks',
      access: 'admin',
      handler: async ({ req, principal }) => {
        const b = await readJsonBody(req);
        return { body: await fleet().rollback(b.model as string, parseTargetBody(b.target), actorOf(principal)) };
      },
    },
    {
      method: 'POST',
      path: '/v1/devices/:id/commands',
      access: 'admin',
      handler: async ({ req, params }) => {
        const b = await readJsonBody(req);
        if (!(COMMANDS as readonly unknown[]).includes(b.command))
          throw new OutpostError('BAD_REQUEST', `command must be one of ${COMMANDS.join(', ')}`, { key: 'command' });
        const args: Record<string, string> = {};
        if (b.command === 'rollback') args.model = formatModelId(parseModelId(b.model, 'model'));
        return { status: 202, body: await fleet().sendCommand(params.id, b.command as CommandName, args) };
      },
    },
    {
      method: 'GET',
      path: '/v1/rollout',
      access: 'admin',
      handler: async () => ({ body: { devices: fleet().rolloutStatus() } }),
    },
  ];
}

/** `{model}` or `{app}`: exactly one (deployments and plans). */
export function parseSpecBody(b: Record<string, unknown>): DeploySpec {
  const hasModel = typeof b.model === 'string';
  const hasApp = typeof b.app === 'string';
  if (hasModel === hasApp)
    throw new OutpostError(
      'BAD_REQUEST',
      'give exactly one of "model" ("owner/name[@version]") or "app" ("owner/app")',
      {
        key: 'model',
      },
    );
  return hasModel ? { model: b.model as string } : { app: b.app as string };
}

export function parseTargetBody(v: unknown): Target {
  const t = v as Partial<Target> | null;
  if (!t || typeof t !== 'object' || !['device', 'tag', 'all'].includes(t.kind as string)) {
    throw new OutpostError('DEPLOY_TARGET_INVALID', 'target must be {"kind": "device"|"tag"|"all", "value": id|tag}', {
      key: 'target',
    });
  }
  if (t.kind !== 'all' && typeof t.value !== 'string')
    throw new OutpostError('DEPLOY_TARGET_INVALID', `target.value must name the ${t.kind}`, { key: 'target.value' });
  return { kind: t.kind as Target['kind'], value: t.kind === 'all' ? '*' : (t.value as string) };
}
