import { printResult } from '../../../protocol/cli.js';
import { OutpostError } from '../../../protocol/errors/index.js';
import { parseModelId } from '../../../protocol/ids.js';
import { COMMANDS, parseDeviceId } from '../../../protocol/topics.js';
import { FleetClient } from '../../fleet/fleet-client.js';
import { defineCommand, stringFlag, usageOnError } from '../args.js';
import { CLOUD_FLAGS, CLOUD_FLAGS_HELP, resolveCloud } from '../target.js';

/**
 * `outpost device command`: the imperative verbs on top of the desired state. The cloud signs
 * each one with its online key, with a fresh nonce and a 5-minute expiry; the device refuses
 * anything unsigned, forged, expired or already run (docs/security.md, "Signed commands").
 * `outpost rollback` is different: it changes the deployment, so the device gets a new desired state.
 */
export const deviceCommand = defineCommand({
  usage: `outpost device command <id> <${COMMANDS.join('|')}> [--model owner/name] [--json]

Sends a signed command to one device:
  sync        apply the desired state now, forgetting remembered failures
  rollback    back to the previous kept version of --model, pinned until the desired state changes
  report      publish the reported state now
  telemetry   publish a telemetry sample now
The device answers on its responses topic; see the result with \`outpost device show <id>\`.

  --model M          the model to roll back (rollback only)
${CLOUD_FLAGS_HELP}`,
  options: { ...CLOUD_FLAGS, model: { type: 'string' } },
  positionals: [2, 2],
  async run({ values, positionals, json }, ctx) {
    const id = usageOnError(() => parseDeviceId(positionals[0], 'device id'));
    const cmd = positionals[1];
    if (!(COMMANDS as readonly string[]).includes(cmd))
      throw new OutpostError('USAGE', `unknown command "${cmd}"; use one of ${COMMANDS.join(', ')}`);
    const model = stringFlag(values, 'model');
    if (cmd === 'rollback') usageOnError(() => parseModelId(model, '--model'));
    else if (model !== undefined) throw new OutpostError('USAGE', '--model is only for rollback');
    const res = await new FleetClient(await resolveCloud(values, ctx)).sendCommand(id, cmd, model);
    printResult(ctx, json, res, `sent ${cmd} to ${id} (nonce ${res.nonce.slice(0, 12)}…, valid until ${res.expires})`);
    return 0;
  },
});
