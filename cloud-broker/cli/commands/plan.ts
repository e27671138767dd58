import { printResult } from '../../../protocol/cli.js';
import { FleetClient } from '../../fleet/fleet-client.js';
import { defineCommand, usageOnError } from '../args.js';
import { ROLLOUT_FLAGS, ROLLOUT_HELP, rolloutPolicyOf } from '../rollout-flags.js';
import { renderPlan } from '../rollout-render.js';
import { CLOUD_FLAGS, CLOUD_FLAGS_HELP, resolveCloud } from '../target.js';
import { specOf, TARGET_FLAGS, TARGET_HELP, targetOf } from './deploy.js';

export const plan = defineCommand({
  usage: `outpost plan <owner/name[@version]> | --app <owner/app>  (--device ID | --tag TAG | --all) [rollout flags] [--json]

Shows what \`outpost deploy\` with the same arguments would do, and changes nothing: per device
install X@v, keep, or remove Y; the bytes it must download, counting what its reports say it
already has; the devices that cannot run the model, judged from their reported capabilities
(backend for the framework, TensorRT device type, Hailo device); and the batches the rollout
would form. Same as \`outpost deploy ... --dry-run\`.

  --app OWNER/APP    plan the app's model list instead of one model
${TARGET_HELP}
${ROLLOUT_HELP}
${CLOUD_FLAGS_HELP}`,
  options: { ...CLOUD_FLAGS, ...TARGET_FLAGS, ...ROLLOUT_FLAGS, app: { type: 'string' } },
  positionals: [0, 1],
  async run({ values, positionals, json }, ctx) {
    const spec = specOf(values, positionals);
    const target = usageOnError(() => targetOf(values));
    const p = await new FleetClient(await resolveCloud(values, ctx)).plan(spec, target, rolloutPolicyOf(values));
    printResult(ctx, json, { plan: p }, renderPlan(p));
    return 0;
  },
});
