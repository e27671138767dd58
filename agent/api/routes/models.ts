import { OutpostError } from '../../../protocol/errors/index.js';
import { toKServeDatatype, type ModelMetadata, type TensorMetadata } from '../../../protocol/kserve.js';
import type { TensorInfo } from '../../runtime/backend.js';
import type { Handler } from '../context.js';
import { sendError, sendJson } from '../http.js';
import { resolveVersion } from '../names.js';
import type { ModelEntry, ModelDescription } from '../types.js';

function tensorMeta(t: TensorInfo): TensorMetadata {
  // KServe writes a dynamic dimension as -1.
  return {
    name: t.name,
    datatype: toKServeDatatype(t.dtype),
    shape: t.shape.map((d) => (d === null || d < 0 ? -1 : d)),
  };
}

/** The model (and version) a `/v2/models/{name}[/versions/{v}]` route addresses, ready to serve. */
export function servedModel(
  ctx: Parameters<Handler>[3],
  params: Record<string, string>,
): { entry: ModelEntry; model: ModelDescription } {
  const entry = ctx.runtime.lookup(params.name!);
  const version = resolveVersion(entry, params.version, ctx.runtime.ensureVersion !== undefined);
  const model = ctx.runtime.describe(entry.id, version);
  if (!model || (entry.state === 'unhealthy' && model.version === entry.activeVersion)) {
    const why = entry.error ? ` (${entry.error.code}: ${entry.error.message})` : '';
    throw new OutpostError(
      'API_MODEL_NOT_READY',
      `model ${entry.id} has no version ready to serve; its state is ${entry.state}${why}`,
      { model: entry.id, state: entry.state, ...(entry.error ? { error: entry.error } : {}) },
    );
  }
  return { entry, model };
}

/**
 * servedModel for `/versions/{v}` routes that may name a kept, not yet loaded version: loads it
 * on demand first (Triton's version policy), then resolves as usual.
 */
export async function servedVersion(
  ctx: Parameters<Handler>[3],
  params: Record<string, string>,
): Promise<{ entry: ModelEntry; model: ModelDescription }> {
  if (params.version !== undefined && ctx.runtime.ensureVersion) {
    const entry = ctx.runtime.lookup(params.name!);
    const v = resolveVersion(entry, params.version, true)!;
    if (entry.activeVersion !== null && v !== entry.activeVersion) await ctx.runtime.ensureVersion(entry.id, v);
  }
  return servedModel(ctx, params);
}

/** KServe's platform names where one exists for the backend; otherwise the backend's own name. */
const PLATFORM: Record<string, string> = { onnx: 'onnxruntime_onnx', tensorrt: 'tensorrt_plan' };

export function metadataOf(
  entry: ModelEntry,
  model: ModelDescription,
): ModelMetadata & { outpost: Record<string, unknown> } {
  return {
    name: entry.id,
    versions: entry.loadedVersions.map(String),
    platform: PLATFORM[model.backend] ?? model.backend,
    inputs: model.inputs.map(tensorMeta),
    outputs: model.outputs.map(tensorMeta),
    // Outpost's additions, outside KServe's fields so KServe clients ignore them.
    outpost: {
      version: model.version,
      active_version: entry.activeVersion,
      purpose: model.purpose,
      framework: model.framework,
      backend: model.backend,
      state: entry.state,
      ...(model.serving ? { serving: model.serving } : {}),
    },
  };
}

/** GET /v2/models (an Outpost extension: KServe has no list route). */
export const list: Handler = (_req, res, _p, ctx) => {
  sendJson(res, 200, { models: ctx.runtime.list() });
};

/** GET /v2/models/{name}[/versions/{v}] */
export const metadata: Handler = async (_req, res, { params }, ctx) => {
  const { entry, model } = await servedVersion(ctx, params);
  sendJson(res, 200, metadataOf(entry, model));
};

/** GET .../ready: 200 when the model (version) can serve, otherwise 503 API_MODEL_NOT_READY. */
export const modelReady: Handler = (_req, res, { params }, ctx) => {
  try {
    const { entry, model } = servedModel(ctx, params);
    sendJson(res, 200, { name: entry.id, version: String(model.version), ready: true });
  } catch (err) {
    if (err instanceof OutpostError && err.code === 'API_MODEL_NOT_READY') sendError(res, err);
    else throw err;
  }
};
