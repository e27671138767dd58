import { printResult } from '../../../protocol/cli.js';
import { parseModelId } from '../../../protocol/ids.js';
import { FleetClient } from '../../fleet/fleet-client.js';
import { describeTarget } from '../../fleet/types.js';
import { defineCommand, usageOnError } from '../args.js';
import { CLOUD_FLAGS, CLOUD_FLAGS_HELP, resolveCloud } from '../target.js';
import { TARGET_FLAGS, TARGET_HELP, targetOf } from './deploy.js';

export const rollback = defineCommand({
  usage: `outpost rollback <owner/name> (--device ID | --tag TAG | --all) [--json]

Undoes the newest deployment of the model to exactly this target, so the version deployed before
it is in force again. The devices get a new signed desired state with a HIGHER revision (a
rollback is a new instruction, never a replay of an old document). Refused with
ROLLBACK_NO_PREVIOUS when the target had no earlier version of the model.

${TARGET_HELP}
${CLOUD_FLAGS_HELP}`,
  options: { ...CLOUD_FLAGS, ...TARGET_FLAGS },
  positionals: [1, 1],
  async run({ values, positionals, json }, ctx) {
    usageOnError(() => parseModelId(positionals[0], 'model id'));
    const target = usageOnError(() => targetOf(values));
    const res = await new FleetClient(await resolveCloud(values, ctx)).rollback(positionals[0], target);
    printResult(
      ctx,
      json,
      res,
      `rolled back ${positionals[0]} on ${describeTarget(res.target)}: version ${res.from} -> ${res.to}; ${res.devices.length} device(s) updated`,
    );
    return 0;
  },
});
