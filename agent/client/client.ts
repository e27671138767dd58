import { Agent, request, type IncomingMessage } from 'node:http';
import { OutpostError } from '../../protocol/errors/index.js';
import {
  parseInferResponse,
  type InferResponseJson,
  type ModelMetadata,
  type ServerMetadata,
  type ShmRef,
  type ShmTensor,
  type WireTensor,
  type WireTensorData,
} from '../../protocol/kserve.js';
import { collectAnswer, errorOfAnswer, jsonOf, type Answer } from '../net/http-answer.js';
import { ConnectionPool, unreachable, whyUnreachable } from './connection.js';
import { encodeRequest } from './request-memo.js';
import { OutputPlacer, targetsOf } from './output-targets.js';
import type { SinkFor } from './response-parser.js';
import { parseSse, type SseMessage } from './sse.js';

/**
 * The typed client that apps on the device import to talk to the agent over its Unix socket.
 *
 *   const agent = new AgentClient({ socket: '/run/outpost/agent.sock' });
 *   const { outputs } = await agent.infer('acme/colors', { data: tensor }, { binary: true });
 *   const result = await agent.predict('acme/colors', jpegBytes);
 *   for await (const e of agent.events()) console.log(e.type, e.model, e.version);
 *
 * Every failure is an OutpostError: the agent's own code when it answered (API_SATURATED,
 * API_SHAPE_MISMATCH...), API_UNREACHABLE when the socket is absent, refused or not permitted.
 */
export const DEFAULT_SOCKET = '/run/outpost/agent.sock';

export interface AgentClientOptions {
  socket?: string;
  /** Per-request timeout (ms) for everything except events(); default 30 s. */
  timeoutMs?: number;
}

export interface InferOptions {
  /** Send inputs and ask for outputs as raw bytes (the binary-tensor extension). */
  binary?: boolean;
  /**
   * Only these outputs (default: all). An output with `shm` is written into that region; one with
   * `into` is read from the socket straight into that typed array (./output-targets.ts), which
   * must be the output's datatype and hold at least its elements. The array belongs to the
   * client until the call settles (do not transfer it meanwhile, as with fs.read).
   */
  outputs?: (string | OutputRequest)[];
  version?: number;
  id?: string;
  signal?: AbortSignal;
}

/** One output asked for by name, optionally into a shared-memory region or a caller's typed array. */
export type OutputRequest = { name: string; shm?: ShmRef; into?: WireTensorData };

export interface PredictOptions {
  annotate?: boolean;
  confidence?: number;
  topK?: number;
  version?: number;
  signal?: AbortSignal;
}

export interface AgentEventMessage {
  id?: string;
  type: string;
  model: string;
  version?: number;
  at?: string;
  code?: string;
  message?: string;
}

/** A request body: one buffer, or parts written back to back (never joined; see sendParts). */
type Body = { parts: readonly Uint8Array[]; byteLength: number };

export class AgentClient {
  readonly socket: string;
  private readonly timeoutMs: number;
  /**
   * Keep-alive connections, reused last-in-first-out: a request on a warm connection skips the
   * connect and the agent's per-connection setup. Every request but the event stream goes
   * through them, written and read without node:http (./connection.ts says why). Idle
   * connections are unreferenced, so they never keep an app's process alive; close() drops them.
   */
  private readonly pool: ConnectionPool;
  /** The event stream only: a long-lived answer that node:http's streaming suits. */
  private readonly agent = new Agent({ keepAlive: false });

  constructor(opts: AgentClientOptions = {}) {
    this.socket = opts.socket ?? process.env.OUTPOST_SOCKET ?? DEFAULT_SOCKET;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.pool = new ConnectionPool(this.socket);
  }

  /** Closes the idle keep-alive connections (requests in flight finish). */
  close(): void {
    this.pool.close();
    this.agent.destroy();
  }

  /** Liveness and readiness; an unreachable agent throws API_UNREACHABLE. */
  async health(): Promise<{ live: boolean; ready: boolean }> {
    const live = await this.send('GET', '/v2/health/live');
    const ready = await this.send('GET', '/v2/health/ready');
    return { live: live.status === 200, ready: ready.status === 200 };
  }

  async server(): Promise<ServerMetadata> {
    return this.json<ServerMetadata>('GET', '/v2');
  }

  /** Installed models with their active version and state. */
  async models(): Promise<
    {
      id: string;
      activeVersion: number | null;
      loadedVersions: number[];
      state: string;
      error?: { code: string; message: string };
    }[]
  > {
    return (await this.json<{ models: never[] }>('GET', '/v2/models')).models;
  }

  /** KServe model metadata: inputs and outputs with datatypes and shapes (-1 = free). */
  async model(name: string, version?: number): Promise<ModelMetadata & { outpost: Record<string, unknown> }> {
    return this.json('GET', modelPath(name, version));
  }

  async ready(name: string, version?: number): Promise<boolean> {
    const a = await this.send('GET', `${modelPath(name, version)}/ready`);
    return a.status === 200;
  }

  /**
   * Runs tensors through a model. An input given as {dtype, shape, shm} is read by the agent from
   * a registered shared-memory region (see registerSharedMemory and ./shm.ts); outputs asked for
   * with `shm` come back in `shmOutputs` and their bytes are in the region.
   */
  async infer(
    name: string,
    inputs: Record<string, WireTensor | ShmTensor>,
    opts: InferOptions = {},
  ): Promise<{
    meta: InferResponseJson;
    outputs: Record<string, WireTensor>;
    shmOutputs: Record<string, ShmTensor>;
  }> {
    const targets = targetsOf(opts.outputs);
    // A shared-memory request repeats every frame: encoded once (request-memo.ts).
    const enc = encodeRequest(inputs, {
      binary: opts.binary,
      binaryOutput: opts.binary,
      id: opts.id,
      // An output read into a caller's array travels as bytes, whatever `binary` says.
      outputs: opts.outputs?.map((o) =>
        typeof o === 'string' ? { name: o } : o.into ? { name: o.name, binary: true } : { name: o.name, shm: o.shm },
      ),
    });
    const headers: Record<string, string> = { 'Content-Type': enc.contentType };
    if (enc.headerLength !== undefined) headers['Inference-Header-Content-Length'] = String(enc.headerLength);
    const placer = targets ? new OutputPlacer(targets) : undefined;
    const a = await this.send(
      'POST',
      `${modelPath(name, opts.version)}/infer`,
      enc,
      headers,
      opts.signal,
      placer?.sinkFor,
    );
    if (a.status !== 200) throw errorOf(a);
    const hl = a.headers['inference-header-content-length'];
    const headerLength = hl === undefined ? undefined : Number(hl);
    return placer ? placer.result(a.body, headerLength) : parseInferResponse(a.body, headerLength);
  }

  /** Registers [offset, offset + byteSize) of the POSIX shared-memory object `key` as `region`. */
  async registerSharedMemory(region: string, key: string, byteSize: number, offset = 0): Promise<void> {
    const body = Buffer.from(JSON.stringify({ key, offset, byte_size: byteSize }));
    const a = await this.send(
      'POST',
      `/v2/systemsharedmemory/region/${encodeURIComponent(region)}/register`,
      { parts: [body], byteLength: body.length },
      { 'Content-Type': 'application/json' },
    );
    if (a.status !== 200) throw errorOf(a);
  }

  /** Unregisters one region, or every region when none is named. */
  async unregisterSharedMemory(region?: string): Promise<void> {
    const path =
      region === undefined
        ? '/v2/systemsharedmemory/unregister'
        : `/v2/systemsharedmemory/region/${encodeURIComponent(region)}/unregister`;
    const a = await this.send('POST', path);
    if (a.status !== 200) throw errorOf(a);
  }

  async sharedMemoryStatus(
    region?: string,
  ): Promise<{ name: string; key: string; offset: number; byte_size: number }[]> {
    return this.json(
      'GET',
      region === undefined
        ? '/v2/systemsharedmemory/status'
        : `/v2/systemsharedmemory/region/${encodeURIComponent(region)}/status`,
    );
  }

  /** Typed results for one JPEG/PNG image, or with `annotate` the annotated PNG's bytes. */
  async predict(name: string, image: Uint8Array, opts: PredictOptions & { annotate: true }): Promise<Buffer>;
  async predict(name: string, image: Uint8Array, opts?: PredictOptions): Promise<PredictAnswer>;
  async predict(name: string, image: Uint8Array, opts: PredictOptions = {}): Promise<PredictAnswer | Buffer> {
    const qs = predictQuery(opts).toString();
    const path = `${predictPath(name)}${qs ? `?${qs}` : ''}`;
    const a = await this.send(
      'POST',
      path,
      { parts: [image], byteLength: image.byteLength },
      { 'Content-Type': 'application/octet-stream' },
      opts.signal,
    );
    if (a.status !== 200) throw errorOf(a);
    return opts.annotate ? a.body : (parseJson(a.body) as PredictAnswer);
  }

  /**
   * predict on a raw frame: packed pixels in `data`, or in a registered shared-memory region
   * (`shm`), so a camera frame is neither encoded here nor decoded by the agent.
   */
  async predictFrame(name: string, frame: FrameInput, opts: PredictOptions & { annotate: true }): Promise<Buffer>;
  async predictFrame(name: string, frame: FrameInput, opts?: PredictOptions): Promise<PredictAnswer>;
  async predictFrame(name: string, frame: FrameInput, opts: PredictOptions = {}): Promise<PredictAnswer | Buffer> {
    const q = predictQuery(opts);
    q.set('width', String(frame.width));
    q.set('height', String(frame.height));
    q.set('format', frame.format);
    if ('shm' in frame) {
      q.set('shm_region', frame.shm.region);
      if (frame.shm.offset) q.set('shm_offset', String(frame.shm.offset));
    }
    const body = 'data' in frame ? { parts: [frame.data], byteLength: frame.data.byteLength } : undefined;
    const a = await this.send(
      'POST',
      `${predictPath(name)}?${q}`,
      body,
      { 'Content-Type': 'application/octet-stream' },
      opts.signal,
    );
    if (a.status !== 200) throw errorOf(a);
    return opts.annotate ? a.body : (parseJson(a.body) as PredictAnswer);
  }

  async status(): Promise<Record<string, unknown>> {
    return this.json('GET', '/v1/status');
  }

  async metrics(): Promise<string> {
    const a = await this.send('GET', '/metrics');
    if (a.status !== 200) throw errorOf(a);
    return a.body.toString('utf8');
  }

  /**
   * Model changes as they happen. The iterator ends when the agent closes the stream or `signal`
   * aborts; it does not reconnect by itself (pass `lastEventId` to resume after a reconnect).
   */
  async *events(opts: { signal?: AbortSignal; lastEventId?: string } = {}): AsyncGenerator<AgentEventMessage> {
    const res = await this.open(
      'GET',
      '/v1/events',
      opts.lastEventId ? { 'Last-Event-ID': opts.lastEventId } : {},
      opts.signal,
    );
    if (res.statusCode !== 200)
      throw errorOf(
        await collectAnswer(res, (why) => new OutpostError('API_BAD_RESPONSE', `the agent's answer: ${why}`)),
      );
    try {
      for await (const m of parseSse(res) as AsyncGenerator<SseMessage>) {
        if (!m.event) continue;
        const data = JSON.parse(m.data) as Omit<AgentEventMessage, 'id'>;
        yield { ...data, ...(m.id !== undefined ? { id: m.id } : {}) };
      }
    } catch (err) {
      if (opts.signal?.aborted) return;
      throw err;
    } finally {
      res.destroy();
    }
  }

  private async json<T>(method: string, path: string): Promise<T> {
    const a = await this.send(method, path);
    if (a.status !== 200) throw errorOf(a);
    return parseJson(a.body) as T;
  }

  private send(
    method: string,
    path: string,
    body?: Body,
    headers: Record<string, string> = {},
    signal?: AbortSignal,
    sink?: SinkFor,
  ): Promise<Answer> {
    return this.pool.send({
      method,
      path,
      headers,
      parts: body?.parts,
      byteLength: body?.byteLength,
      timeoutMs: this.timeoutMs,
      signal,
      sink,
    });
  }

  /** The event stream's request (node:http, streamed); everything else goes through send(). */
  private open(
    method: string,
    path: string,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
  ): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.socket, agent: this.agent, method, path, signal, headers });
      req.on('response', resolve);
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err instanceof OutpostError || err.name === 'AbortError') return reject(err);
        reject(unreachable(this.socket, whyUnreachable(err), err.code));
      });
      req.end();
    });
  }
}

export interface PredictAnswer {
  model: string;
  version: number;
  purpose?: string;
  duration?: number;
  predictions?: unknown[];
  [k: string]: unknown;
}

/** A raw frame for predictFrame: packed rows, 3 bytes per pixel (4 with alpha, which is ignored). */
export type FrameInput = { width: number; height: number; format: 'rgb' | 'bgr' | 'rgba' | 'bgra' } & (
  | { data: Uint8Array }
  | { shm: { region: string; offset?: number } }
);

function predictQuery(opts: PredictOptions): URLSearchParams {
  const q = new URLSearchParams();
  if (opts.annotate) q.set('annotate', '1');
  if (opts.confidence !== undefined) q.set('confidence', String(opts.confidence));
  if (opts.topK !== undefined) q.set('top_k', String(opts.topK));
  if (opts.version !== undefined) q.set('version', String(opts.version));
  return q;
}

function predictPath(name: string): string {
  const [owner, model] = splitId(name);
  return `/v1/models/${encodeURIComponent(owner)}/${encodeURIComponent(model)}/predict`;
}

function modelPath(name: string, version?: number): string {
  return `/v2/models/${encodeURIComponent(name)}${version === undefined ? '' : `/versions/${version}`}`;
}

function splitId(name: string): [string, string] {
  const i = name.indexOf('/');
  if (i <= 0 || i === name.length - 1)
    throw new OutpostError('USAGE', `model "${name}" must be owner/name`, { model: name });
  return [name.slice(0, i), name.slice(i + 1)];
}

function parseJson(body: Buffer): unknown {
  return jsonOf(
    { status: 200, headers: {}, body },
    (start) => new OutpostError('API_BAD_RESPONSE', `the agent answered with something that is not JSON: ${start}`),
  );
}

function errorOf(a: Answer): OutpostError {
  const e = errorOfAnswer(a).error;
  const retry = a.headers['retry-after'];
  if (retry !== undefined && e.details === undefined)
    return new OutpostError(e.code, e.message, { retryAfterSeconds: Number(retry) });
  return e;
}
