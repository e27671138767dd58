import { OutpostError, toOutpostError } from '../../../protocol/errors/index.js';
import {
  encodeInferResponse,
  parseInferRequest,
  toKServeDatatype,
  type InferRequest,
} from '../../../protocol/kserve.js';
import type { Tensor, TensorInfo } from '../../runtime/backend.js';
import type { ApiContext, Handler } from '../context.js';
import { header, mediaType, readBody, sendBytes } from '../http.js';
import type { ModelDescription } from '../types.js';
import { servedModel } from './models.js';

/**
 * POST /v2/models/{name}[/versions/{v}]/infer: JSON tensors or the binary-tensor extension.
 * Order matters: resolve the model and take a concurrency slot before reading the body (cheap
 * refusals first), validate every input against the model's metadata before the runtime sees it,
 * and release the slot whatever happens.
 */
export const infer: Handler = async (req, res, { params }, ctx) => {
  const { entry, model } = servedModel(ctx, params);
  const release = ctx.limiter.acquire(entry.id);
  try {
    const type = mediaType(req);
    if (type !== undefined && type !== 'application/json' && type !== 'application/octet-stream') {
      throw new OutpostError(
        'API_UNSUPPORTED_MEDIA_TYPE',
        `infer takes application/json or application/octet-stream, not ${type.slice(0, 80)}`,
        { contentType: type.slice(0, 80) },
      );
    }
    const hl = parseHeaderLength(header(req, 'inference-header-content-length'));
    const body = await readBody(req, ctx.limits.maxBodyBytes);
    const request = parseInferRequest(body, hl);
    const inputs = checkInputs(model, request);
    const outputs = selectOutputs(model, request);
    ctx.metrics.modelRequests.inc({ model: entry.id, route: 'infer' });
    const started = process.hrtime.bigint();
    let result: Awaited<ReturnType<ApiContext['runtime']['infer']>>;
    try {
      result = await ctx.runtime.infer(entry.id, params.version === undefined ? undefined : model.version, inputs);
    } catch (err) {
      const e = toOutpostError(err);
      ctx.metrics.modelErrors.inc({ model: entry.id, code: e.code });
      throw e;
    }
    ctx.metrics.inferenceSeconds.observe({ model: entry.id }, Number(process.hrtime.bigint() - started) / 1e9);
    const chosen = outputs.map((o) => {
      const tensor = result.outputs[o.name];
      if (!tensor) throw new OutpostError('INTERNAL', `the runtime returned no output "${o.name}" for ${entry.id}`);
      return { name: o.name, tensor, binary: o.binary };
    });
    const encoded = encodeInferResponse(
      {
        model_name: entry.id,
        model_version: String(result.version),
        ...(request.id !== undefined ? { id: request.id } : {}),
      },
      chosen,
    );
    const headers: Record<string, string> = { 'Content-Type': encoded.contentType };
    if (encoded.headerLength !== undefined) headers['Inference-Header-Content-Length'] = String(encoded.headerLength);
    sendBytes(res, 200, encoded.body, headers);
  } finally {
    release();
  }
};

function parseHeaderLength(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d{1,15}$/.test(raw.trim())) {
    throw new OutpostError(
      'API_BAD_HEADER',
      `Inference-Header-Content-Length "${raw.slice(0, 40)}" is not a byte count`,
      { header: 'inference-header-content-length', value: raw.slice(0, 40) },
    );
  }
  return Number(raw.trim());
}

/** Every model input present, no others, dtype and shape as the model declares (null = free). */
function checkInputs(model: ModelDescription, request: InferRequest): Record<string, Tensor> {
  const byName = new Map<string, TensorInfo>(model.inputs.map((i) => [i.name, i]));
  for (const name of Object.keys(request.inputs)) {
    if (!byName.has(name)) {
      throw new OutpostError(
        'API_UNKNOWN_INPUT',
        `model ${model.id} has no input "${name.slice(0, 80)}"; its inputs are ${[...byName.keys()].join(', ')}`,
        { input: name.slice(0, 80), inputs: [...byName.keys()] },
      );
    }
  }
  const out: Record<string, Tensor> = {};
  for (const info of model.inputs) {
    const t = request.inputs[info.name];
    if (!t)
      throw new OutpostError('API_UNKNOWN_INPUT', `the request misses input "${info.name}" of model ${model.id}`, {
        input: info.name,
      });
    if (t.dtype !== info.dtype) {
      throw new OutpostError(
        'API_DTYPE_MISMATCH',
        `input "${info.name}" is ${toKServeDatatype(t.dtype)}, but model ${model.id} takes ${toKServeDatatype(info.dtype)}`,
        { input: info.name, expected: toKServeDatatype(info.dtype), got: toKServeDatatype(t.dtype) },
      );
    }
    const fits =
      t.shape.length === info.shape.length && info.shape.every((d, i) => d === null || d < 0 || d === t.shape[i]);
    if (!fits) {
      const want = info.shape.map((d) => (d === null || d < 0 ? -1 : d));
      throw new OutpostError(
        'API_SHAPE_MISMATCH',
        `input "${info.name}" has shape [${t.shape}], but model ${model.id} takes [${want}] (-1 is free)`,
        { input: info.name, expected: want, got: t.shape },
      );
    }
    out[info.name] = t as Tensor;
  }
  return out;
}

function selectOutputs(model: ModelDescription, request: InferRequest): { name: string; binary: boolean }[] {
  if (request.outputs === null) return model.outputs.map((o) => ({ name: o.name, binary: request.binaryOutput }));
  const names = new Set(model.outputs.map((o) => o.name));
  for (const o of request.outputs) {
    if (!names.has(o.name)) {
      throw new OutpostError(
        'API_UNKNOWN_INPUT',
        `model ${model.id} has no output "${o.name.slice(0, 80)}"; its outputs are ${[...names].join(', ')}`,
        { output: o.name.slice(0, 80), outputs: [...names] },
      );
    }
  }
  return request.outputs;
}
