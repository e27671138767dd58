import { OutpostError } from '../../../protocol/errors/index.js';
import type { ApiContext, Handler } from '../context.js';
import { readBody, sendJson } from '../http.js';
import { resolveModel } from '../names.js';
import type { ModelEntry } from '../types.js';

/**
 * KServe's model repository extension (the Triton/KServe "model_repository" REST routes):
 *
 *   POST /v2/repository/index                       [{name, version, state, reason}] for every
 *                                                   installed model and version kept on disk;
 *                                                   body {"ready": true} keeps READY rows only
 *   POST /v2/repository/models/{name}/load          serve the model's current version
 *   POST /v2/repository/models/{name}/unload        stop serving it (it stays installed)
 *
 * Names resolve like the other routes (owner/name, or the name alone when unambiguous), against
 * the installed models, so an unloaded model can be loaded again.
 */
const MAX_BODY = 64 * 1024;

function repo(ctx: ApiContext) {
  const r = ctx.runtime;
  if (!r.repositoryIndex || !r.loadModel || !r.unloadModel)
    throw new OutpostError('NOT_FOUND', 'this agent serves no model repository (no store behind its runtime)');
  return { index: r.repositoryIndex.bind(r), load: r.loadModel.bind(r), unload: r.unloadModel.bind(r) };
}

async function jsonBody(req: Parameters<Handler>[0]): Promise<Record<string, unknown>> {
  const raw = await readBody(req, MAX_BODY);
  if (raw.length === 0) return {};
  let v: unknown;
  try {
    v = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new OutpostError('API_BAD_JSON', 'the body is not JSON; send {} or nothing');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new OutpostError('BAD_REQUEST', 'the body must be a JSON object');
  return v as Record<string, unknown>;
}

export const repositoryIndex: Handler = async (req, res, _p, ctx) => {
  const { index } = repo(ctx);
  const body = await jsonBody(req);
  if (body.ready !== undefined && typeof body.ready !== 'boolean')
    throw new OutpostError('BAD_REQUEST', '"ready" must be true or false');
  const rows = await index();
  sendJson(res, 200, body.ready ? rows.filter((r) => r.state === 'READY') : rows);
};

async function installed(ctx: ApiContext, name: string): Promise<string> {
  const rows = await repo(ctx).index();
  // Only the id matters to resolveModel; the rest of ModelEntry is filler.
  const entries: ModelEntry[] = [...new Set(rows.map((r) => r.name))].map((id) => ({
    id,
    activeVersion: null,
    loadedVersions: [],
    state: 'failed',
  }));
  return resolveModel(entries, name).id;
}

export const repositoryLoad: Handler = async (req, res, { params }, ctx) => {
  await jsonBody(req);
  const id = await installed(ctx, params.name!);
  await repo(ctx).load(id);
  sendJson(res, 200, {});
};

export const repositoryUnload: Handler = async (req, res, { params }, ctx) => {
  await jsonBody(req);
  const id = await installed(ctx, params.name!);
  await repo(ctx).unload(id);
  sendJson(res, 200, {});
};
