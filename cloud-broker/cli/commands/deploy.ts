import { printResult } from '../../../protocol/cli.js';
import { OutpostError } from '../../../protocol/errors/index.js';
import { parseModelRef } from '../../../protocol/ids.js';
import { FleetClient } from '../../fleet/fleet-client.js';
import { describeTarget, type Target } from '../../fleet/types.js';
import { defineCommand, stringFlag, usageOnError, type FlagOptions, type FlagValues } from '../args.js';
import { renderPlan } from '../rollout-render.js';
import { ROLLOUT_FLAGS, ROLLOUT_HELP, rolloutPolicyOf } from '../rollout-flags.js';
import { CLOUD_FLAGS, CLOUD_FLAGS_HELP, resolveCloud } from '../target.js';

/** --device ID | --tag T | --all: exactly one (deploy, rollback). */
export const TARGET_FLAGS: FlagOptions = {
  device: { type: 'string' },
  tag: { type: 'string' },
  all: { type: 'boolean' },
};

export const TARGET_HELP = `  --device ID        one device
  --tag TAG          every device with this tag, now and later
  --all              every device of the fleet, now and later`;

export function targetOf(values: FlagValues): Target {
  const device = stringFlag(values, 'device');
  const tag = stringFlag(values, 'tag');
  const all = values.all === true;
  const n = (device !== undefined ? 1 : 0) + (tag !== undefined ? 1 : 0) + (all ? 1 : 0);
  if (n !== 1)
    throw new OutpostError('DEPLOY_TARGET_INVALID', 'give exactly one target: --device <id>, --tag <tag> or --all');
  if (device !== undefined) return { kind: 'device', value: device };
  if (tag !== undefined) return { kind: 'tag', value: tag };
  return { kind: 'all', value: '*' };
}

/** The model or app a deploy or plan names (usage errors before anything is sent). */
export function specOf(values: FlagValues, positionals: string[]): { model: string } | { app: string } {
  const app = stringFlag(values, 'app');
  if ((app === undefined) === (positionals.length === 0)) {
    throw new OutpostError('USAGE', 'give a model (owner/name[@version]) or --app owner/app, not both');
  }
  if (app !== undefined) return { app };
  return {
    model: usageOnError(() => {
      parseModelRef(positionals[0]);
      return positionals[0];
    }),
  };
}

export const deploy = defineCommand({
  usage: `outpost deploy <owner/name[@version]> | --app <owner/app>  (--device ID | --tag TAG | --all)
    [--canary N|P%] [--batch-size N|P%] [--max-per-minute N] [--rate-increase F] [--max-failures N|P%]
    [--min-devices N] [--device-timeout DURATION] [--soak DURATION] [--on-failure rollback|pause]
    [--dry-run] [--json]

Sets the desired models of the targeted devices. Without @version the latest version is deployed.
With --app every model of the app's catalog model list is deployed. Without rollout flags every
targeted device gets a new signed desired state (a higher revision) at once; a device that joins
the tag later gets it too. With any rollout flag the deploy is a staged rollout: the cloud sends
it batch by batch, each gated on the devices' health, and stops it on failures (follow it with
\`outpost rollout status <id>\`). --dry-run prints the plan (as \`outpost plan\`) and changes nothing.

  --app OWNER/APP    deploy the app's model list instead of one model
  --dry-run          show what would change per device, the bytes, the batches; change nothing
${TARGET_HELP}
${ROLLOUT_HELP}
${CLOUD_FLAGS_HELP}`,
  options: {
    ...CLOUD_FLAGS,
    ...TARGET_FLAGS,
    ...ROLLOUT_FLAGS,
    app: { type: 'string' },
    'dry-run': { type: 'boolean' },
  },
  positionals: [0, 1],
  async run({ values, positionals, json }, ctx) {
    const spec = specOf(values, positionals);
    const target = usageOnError(() => targetOf(values));
    const policy = rolloutPolicyOf(values);
    const client = new FleetClient(await resolveCloud(values, ctx));
    if (values['dry-run'] === true) {
      const plan = await client.plan(spec, target, policy);
      printResult(ctx, json, { plan }, renderPlan(plan));
      return 0;
    }
    const res = await client.deploy(spec, target, policy);
    const what = res.deployments.map((d) => `${d.model}@${d.version}`).join(', ');
    const human = res.rollout
      ? `rollout ${res.rollout.id} created: ${what} to ${describeTarget(res.target)}, ${res.rollout.counts.total} device(s) in ${res.rollout.batchCount} batch(es); follow it with \`outpost rollout status ${res.rollout.id}\``
      : `deployed ${what} to ${describeTarget(res.target)}; ${res.devices.length} device(s) got a new desired state${res.devices.length ? `: ${res.devices.join(', ')}` : ''}`;
    printResult(ctx, json, res, human);
    return 0;
  },
});
