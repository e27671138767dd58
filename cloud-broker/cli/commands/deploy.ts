import { printResult } from '../../../protocol/cli.js';
import { OutpostError } from '../../../protocol/errors/index.js';
import { parseModelRef } from '../../../protocol/ids.js';
import { FleetClient } from '../../fleet/fleet-client.js';
import { describeTarget, type Target } from '../../fleet/types.js';
import { defineCommand, stringFlag, usageOnError, type FlagOptions, type FlagValues } from '../args.js';
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

export const deploy = defineCommand({
  usage: `outpost deploy <owner/name[@version]> | --app <owner/app>  (--device ID | --tag TAG | --all) [--json]

Sets the desired models of the targeted devices. Without @version the latest version is deployed.
With --app every model of the app's catalog model list is deployed. Each targeted device gets a
new signed desired state (a higher revision); a device that joins the tag later gets it too.

  --app OWNER/APP    deploy the app's model list instead of one model
${TARGET_HELP}
${CLOUD_FLAGS_HELP}`,
  options: { ...CLOUD_FLAGS, ...TARGET_FLAGS, app: { type: 'string' } },
  positionals: [0, 1],
  async run({ values, positionals, json }, ctx) {
    const app = stringFlag(values, 'app');
    if ((app === undefined) === (positionals.length === 0)) {
      throw new OutpostError('USAGE', 'give a model (owner/name[@version]) or --app owner/app, not both');
    }
    const target = usageOnError(() => targetOf(values));
    const spec =
      app !== undefined
        ? { app }
        : {
            model: usageOnError(() => {
              parseModelRef(positionals[0]);
              return positionals[0];
            }),
          };
    const t = await resolveCloud(values, ctx);
    const res = await new FleetClient(t).deploy(spec, target);
    const what = res.deployments.map((d) => `${d.model}@${d.version}`).join(', ');
    const human = `deployed ${what} to ${describeTarget(res.target)}; ${res.devices.length} device(s) got a new desired state${res.devices.length ? `: ${res.devices.join(', ')}` : ''}`;
    printResult(ctx, json, res, human);
    return 0;
  },
});
