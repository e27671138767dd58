import { OutpostError, toOutpostError } from '../../../protocol/errors/index.js';
import { elementCount, fromBytes, toKServeDatatype, type InferRequest, type ShmRef } from '../../../protocol/kserve.js';
import { releaseOutputs, type Tensor, type TensorInfo } from '../../runtime/backend.js';
import type { ApiContext, Handler } from '../context.js';
import { encodeRepeatable, parseRepeatable } from '../repeat-request.js';
import type { ShmView } from '../shm.js';
import { lend, readAlignedBody, type AnswerLife, type BodyLease } from '../body.js';
import { header, mediaTypeOf, sendParts, tooLarge } from '../http.js';
import type { ModelDescription } from '../types.js';
import { servedModel, servedVersion } from './models.js';
import { limitFor } from '../limiter.js';

/**
 * POST /v2/models/{name}[/versions/{v}]/infer: JSON tensors, the binary-tensor extension, and
 * tensors in registered shared-memory regions (inputs and outputs), in any mix.
 * Order matters: resolve the model and take a concurrency slot before reading the body (cheap
 * refusals first), validate every input against the model's metadata before the runtime sees it,
 * and release the slot whatever happens. Binary inputs are views of the request's own buffer;
 * shared-memory inputs are views of the region's mapping (agent/api/shm.ts; verified after the
 * run, since the client may shrink its object meanwhile) or, on the pread path, read into pooled
 * buffers (agent/api/body.ts). Buffers and mappings are given back only after the answer is written.
 */
export const infer: Handler = async (req, res, { params }, ctx) => {
  const head: InferHead = {
    params,
    contentType: header(req, 'content-type'),
    headerLength: header(req, 'inference-header-content-length'),
    contentLength: header(req, 'content-length'),
  };
  const body = (max: number, alignAt: number) => readAlignedBody(req, res, max, ctx.pool, alignAt);
  const a = await runInfer(ctx, head, body, res);
  sendParts(res, a.status, a.parts, a.byteLength, a.headers);
};

/** What the infer core needs of a request's head, whichever server parsed it. */
export interface InferHead {
  params: Record<string, string>;
  contentType: string | undefined;
  headerLength: string | undefined;
  contentLength: string | undefined;
}

/**
 * Reads the whole body into a pooled buffer with body byte `alignAt` 8-byte aligned, refusing
 * more than `max` bytes (agent/api/body.ts readAlignedBody for node:http, the lane's own reader).
 */
export type ReadInferBody = (max: number, alignAt: number) => Promise<BodyLease>;

/** An answer as parts (the JSON header and each tensor's own memory), written without joining. */
export interface InferAnswer {
  status: number;
  headers: Record<string, string>;
  parts: readonly Uint8Array[];
  byteLength: number;
}

/**
 * The transport-independent infer: head fields and a body reader in, the answer's parts out. Both
 * node:http (the handler above) and the fast lane (agent/api/lane/) call it, so admission,
 * limits, metrics and error codes are one implementation. It throws OutpostErrors (and
 * ClientGone) like any route; the caller answers them. `life` closes when the answer has been
 * written or the client is gone: the pooled buffers and the backend's lent outputs go back then,
 * so the caller must write the answer synchronously after this resolves.
 */
export async function runInfer(
  ctx: ApiContext,
  head: InferHead,
  readBody: ReadInferBody,
  life: AnswerLife,
): Promise<InferAnswer> {
  const { params } = head;
  // Without a version in the path nothing needs loading: resolve synchronously, so the fast lane
  // is asked for the body inside the read that brought the head, and the body's next read lands
  // in its own buffer (agent/api/lane/connection.ts) instead of a sliver of the read buffer.
  const { entry, model } = params.version === undefined ? servedModel(ctx, params) : await servedVersion(ctx, params);
  const release = ctx.limiter.acquire(entry.id, limitFor(model));
  const leases: BodyLease[] = [];
  const views: ShmView[] = [];
  const releaseMemory: (() => void)[] = [];
  try {
    const type = mediaTypeOf(head.contentType);
    if (type !== undefined && type !== 'application/json' && type !== 'application/octet-stream') {
      throw new OutpostError(
        'API_UNSUPPORTED_MEDIA_TYPE',
        `infer takes application/json or application/octet-stream, not ${type.slice(0, 80)}`,
        { contentType: type.slice(0, 80) },
      );
    }
    const hl = parseHeaderLength(head.headerLength);
    // Tensor bytes in flight (agent/api/admission.ts): the body and the tensors decoded from it,
    // reserved before the body is read (a chunked body without a length reserves the largest
    // allowed), then the shared-memory inputs before they are copied.
    const declared = Number(head.contentLength);
    const bodyBytes = Number.isSafeInteger(declared) && declared >= 0 ? declared : ctx.limits.maxBodyBytes;
    releaseMemory.push(ctx.memory.reserve(Math.min(bodyBytes, ctx.limits.maxBodyBytes) * 2, 'the tensors'));
    const body = await readBody(ctx.limits.maxBodyBytes, hl ?? 0);
    leases.push(body);
    // An app's shared-memory requests repeat byte for byte: parsed once (agent/api/repeat-request.ts).
    const request = parseRepeatable(body.bytes, hl);
    const shmBytes = Object.values(request.shmInputs).reduce((n, t) => n + t.shm.byteSize, 0);
    if (shmBytes > 0) releaseMemory.push(ctx.memory.reserve(shmBytes, 'the shared-memory inputs'));
    const fromShm = readShmInputs(ctx, life, request, leases, views);
    const inputs = checkInputs(model, { ...request.inputs, ...fromShm });
    const outputs = selectOutputs(model, request);
    for (const o of outputs) if (o.shm) ctx.shm.check(o.shm, `output "${o.name}"`);
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
    // The outputs' memory may be lent by the backend: give it back once the answer has been
    // written (or the client has gone). Everything from here to the caller's write is
    // synchronous, so no other run can reuse it before the answer is handed to the socket.
    const outputsDone = () => releaseOutputs(result.outputs);
    if (life.closed) outputsDone();
    else life.once('close', outputsDone);
    // The client may have shrunk an input's object during the run: then the model read zeros.
    for (const v of views) v.verify();
    ctx.metrics.inferenceSeconds.observe({ model: entry.id }, Number(process.hrtime.bigint() - started) / 1e9);
    const chosen = outputs.map((o) => {
      const tensor = result.outputs[o.name];
      if (!tensor) throw new OutpostError('INTERNAL', `the runtime returned no output "${o.name}" for ${entry.id}`);
      if (o.shm) writeShmOutput(ctx, o.name, o.shm, tensor);
      return { name: o.name, tensor, binary: o.binary, ...(o.shm ? { shm: o.shm } : {}) };
    });
    const encoded = encodeRepeatable(
      request,
      {
        model_name: entry.id,
        model_version: String(result.version),
        ...(request.id !== undefined ? { id: request.id } : {}),
      },
      chosen,
    );
    const headers: Record<string, string> = { 'Content-Type': encoded.contentType };
    if (encoded.headerLength !== undefined) headers['Inference-Header-Content-Length'] = String(encoded.headerLength);
    return { status: 200, headers, parts: encoded.parts, byteLength: encoded.byteLength };
  } finally {
    for (const l of leases) l.release();
    // A mapping stays until the answer is written too (an output a backend returned as a view of
    // its input must not lose its memory under the socket's write).
    if (views.length > 0) {
      const unview = () => {
        for (const v of views) v.release();
      };
      if (life.closed) unview();
      else life.once('close', unview);
    }
    for (const r of releaseMemory) r();
    release();
  }
}

/**
 * Shared-memory inputs: a view of the region's mapping (zero copy), or each read once into a
 * pooled, aligned buffer that the tensor views. They count against api.maxBodyBytes as a body
 * would: a request cannot make the agent hold more.
 */
function readShmInputs(
  ctx: ApiContext,
  life: AnswerLife,
  request: InferRequest,
  leases: BodyLease[],
  views: ShmView[],
): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  let total = 0;
  for (const [name, t] of Object.entries(request.shmInputs)) {
    ctx.shm.check(t.shm, `input "${name}"`);
    total += t.shm.byteSize;
    if (total > ctx.limits.maxBodyBytes) throw tooLarge(total, ctx.limits.maxBodyBytes);
    const view = ctx.shm.view(t.shm, `input "${name}"`);
    if (view) {
      views.push(view);
      out[name] = { dtype: t.dtype, shape: t.shape, data: fromBytes(view.bytes, t.dtype, elementCount(t.shape)) };
      continue;
    }
    const lease = lend(ctx.pool, life, t.shm.byteSize);
    leases.push(lease);
    ctx.shm.read(t.shm, lease.bytes, `input "${name}"`);
    out[name] = { dtype: t.dtype, shape: t.shape, data: fromBytes(lease.bytes, t.dtype, elementCount(t.shape)) };
  }
  return out;
}

function writeShmOutput(ctx: ApiContext, name: string, ref: ShmRef, tensor: Tensor): void {
  const bytes = new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  if (bytes.byteLength > ref.byteSize)
    throw new OutpostError(
      'API_SHM_OUT_OF_RANGE',
      `output "${name}" has ${bytes.byteLength} bytes, more than the ${ref.byteSize} of its shared_memory_byte_size`,
      { output: name, needed: bytes.byteLength, byteSize: ref.byteSize },
    );
  ctx.shm.write(ref, bytes, `output "${name}"`);
}

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
function checkInputs(
  model: ModelDescription,
  given: Record<string, Tensor | InferRequest['inputs'][string]>,
): Record<string, Tensor> {
  const byName = new Map<string, TensorInfo>(model.inputs.map((i) => [i.name, i]));
  for (const name of Object.keys(given)) {
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
    const t = given[info.name];
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

function selectOutputs(model: ModelDescription, request: InferRequest): NonNullable<InferRequest['outputs']> {
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
