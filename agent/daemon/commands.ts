import { OutpostError, toOutpostError } from '../../protocol/errors/index.js';
import { parseModelId, formatModelId } from '../../protocol/ids.js';
import { COMMANDS } from '../../protocol/topics.js';
import type { Logger } from '../../protocol/log.js';
import type { CommandGate } from '../sync/command-gate.js';
import type { Reconciler } from '../sync/reconciler.js';
import type { Telemetry } from '../telemetry/index.js';

/**
 * Imperative commands from the cloud (outpost/v1/devices/{id}/commands/{cmd}); they sit on top
 * of the desired state, never instead of it. Every command is a signed envelope (protocol/
 * command.ts) that passes the gate (signature, device, expiry, nonce) before anything runs. Each
 * gets one response on responses/{cmd}: `{ok: true, nonce, ...}` or `{ok: false, error: {code,
 * message}}`; `nonce` (also sent as `requestId`, the field older clouds read) ties it to the request.
 *
 *   sync                       apply the desired state now, forgetting remembered failures
 *   rollback {"model": "o/n"}  back to the previous kept version, pinned until the desired state changes
 *   report                     publish the reported state now
 *   telemetry                  take and publish a telemetry sample now
 */
export async function handleCommand(
  name: string,
  payload: Buffer,
  deps: { gate: CommandGate; reconciler: Reconciler; telemetry: Telemetry; log: Logger },
): Promise<Record<string, unknown>> {
  let nonce: string | undefined;
  try {
    if (!(COMMANDS as readonly string[]).includes(name))
      throw new OutpostError('SYNC_COMMAND_INVALID', `unknown command "${name}"; use ${COMMANDS.join(', ')}`);
    const cmd = await deps.gate(name, payload);
    nonce = cmd.nonce;
    const ok = { ok: true, nonce, requestId: nonce };
    switch (cmd.command) {
      case 'sync':
        deps.reconciler.syncNow();
        return ok;
      case 'report':
        deps.reconciler.publishNow();
        return ok;
      case 'telemetry':
        await deps.telemetry.sampleNow();
        return ok;
      case 'rollback': {
        const id = formatModelId(parseModelId(cmd.args.model, 'model'));
        const result = await deps.reconciler.rollback(id);
        return { ...ok, model: id, ...result };
      }
    }
  } catch (err) {
    const e = toOutpostError(err);
    deps.log.warn({ command: name, code: e.code }, e.message);
    return { ok: false, ...(nonce ? { nonce, requestId: nonce } : {}), error: e.toJSON() };
  }
}
