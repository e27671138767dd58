import { OutpostError, toOutpostError } from '../../protocol/errors/index.js';
import { parseModelId, formatModelId } from '../../protocol/ids.js';
import { COMMANDS } from '../../protocol/topics.js';
import type { Logger } from '../../protocol/log.js';
import type { Reconciler } from '../sync/reconciler.js';
import type { Telemetry } from '../telemetry/index.js';

/**
 * Imperative commands from the cloud (outpost/v1/devices/{id}/commands/{cmd}); they sit on top
 * of the desired state, never instead of it. Each gets one response on responses/{cmd}:
 * `{ok: true, ...}` or `{ok: false, error: {code, message}}`, echoing the request's `requestId`.
 *
 *   sync                       apply the desired state now, forgetting remembered failures
 *   rollback {"model": "o/n"}  back to the previous kept version, pinned until the desired state changes
 *   report                     publish the reported state now
 *   telemetry                  take and publish a telemetry sample now
 */
export async function handleCommand(
  name: string,
  payload: Buffer,
  deps: { reconciler: Reconciler; telemetry: Telemetry; log: Logger },
): Promise<Record<string, unknown>> {
  let body: Record<string, unknown> = {};
  try {
    if (payload.length > 0) {
      const parsed: unknown = JSON.parse(payload.toString('utf8'));
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      body = parsed as Record<string, unknown>;
    }
  } catch (err) {
    const e = new OutpostError(
      'SYNC_COMMAND_INVALID',
      `command ${name}: payload must be a JSON object (${(err as Error).message})`,
    );
    return { ok: false, error: e.toJSON() };
  }
  const requestId = typeof body.requestId === 'string' ? body.requestId.slice(0, 128) : undefined;
  try {
    switch (name) {
      case 'sync':
        deps.reconciler.syncNow();
        return { ok: true, requestId };
      case 'report':
        deps.reconciler.publishNow();
        return { ok: true, requestId };
      case 'telemetry':
        await deps.telemetry.sampleNow();
        return { ok: true, requestId };
      case 'rollback': {
        const id = formatModelId(parseModelId(body.model, 'model'));
        const result = await deps.reconciler.rollback(id);
        return { ok: true, requestId, model: id, ...result };
      }
      default:
        throw new OutpostError('SYNC_COMMAND_INVALID', `unknown command "${name}"; use ${COMMANDS.join(', ')}`);
    }
  } catch (err) {
    const e = toOutpostError(err);
    deps.log.warn({ command: name, code: e.code }, e.message);
    return { ok: false, requestId, error: e.toJSON() };
  }
}
