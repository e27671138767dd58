import { OutpostError } from '../../../protocol/errors/index.js';
import type { ServerMetadata } from '../../../protocol/kserve.js';
import type { Handler } from '../context.js';
import { sendError, sendJson } from '../http.js';

/** KServe extensions this server implements (reported by GET /v2). */
export const EXTENSIONS = ['binary_tensor_data', 'system_shared_memory', 'outpost_predict', 'outpost_events'];

/** GET /v2/health/live: the process answers. */
export const live: Handler = (_req, res) => sendJson(res, 200, { live: true });

/**
 * GET /v2/health/ready: the agent takes inference requests. The socket opens only after every
 * installed model was loaded (or failed to), so the agent is ready from its first answer until it
 * starts stopping; a model whose load failed, or that became unhealthy (its worker thread kept
 * dying), does not hold the whole agent unready: its own /ready says so, and `unhealthy` here
 * lists each such model with its code and what to do (absent when there is none).
 */
export const ready: Handler = (_req, res, _p, ctx) => {
  if (ctx.isClosing()) return void sendError(res, new OutpostError('API_SHUTTING_DOWN', 'the agent is stopping'));
  const unhealthy = ctx.runtime
    .list()
    .filter((m) => m.state === 'unhealthy')
    .map((m) => ({ name: m.id, version: m.activeVersion, error: m.error }));
  sendJson(res, 200, unhealthy.length > 0 ? { ready: true, unhealthy } : { ready: true });
};

/** GET /v2: server metadata. */
export const serverMetadata: Handler = (_req, res, _p, ctx) => {
  // The repository extension exists only where a store backs the runtime (the daemon's).
  const extensions = ctx.runtime.repositoryIndex ? [...EXTENSIONS, 'model_repository'] : EXTENSIONS;
  const body: ServerMetadata = { name: 'outpost-agent', version: ctx.version, extensions };
  sendJson(res, 200, body);
};
