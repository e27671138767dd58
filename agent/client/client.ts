import { request, type IncomingMessage } from 'node:http';
import { OutpostError } from '../../protocol/errors/index.js';
import {
  encodeInferRequest,
  parseInferResponse,
  type InferResponseJson,
  type ModelMetadata,
  type ServerMetadata,
  type WireTensor,
} from '../../protocol/kserve.js';
import { collectAnswer, errorOfAnswer, idleTimeout, jsonOf, type Answer } from '../net/http-answer.js';
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
  /** Only these outputs (default: all). */
  outputs?: string[];
  version?: number;
  id?: string;
  signal?: AbortSignal;
}

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

export class AgentClient {
  readonly socket: string;
  private readonly timeoutMs: number;

  constructor(opts: AgentClientOptions = {}) {
    this.socket = opts.socket ?? process.env.OUTPOST_SOCKET ?? DEFAULT_SOCKET;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
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

  async infer(
    name: string,
    inputs: Record<string, WireTensor>,
    opts: InferOptions = {},
  ): Promise<{ meta: InferResponseJson; outputs: Record<string, WireTensor> }> {
    const enc = encodeInferRequest(inputs, {
      binary: opts.binary,
      binaryOutput: opts.binary,
      id: opts.id,
      outputs: opts.outputs?.map((n) => ({ name: n })),
    });
    const headers: Record<string, string> = { 'Content-Type': enc.contentType };
    if (enc.headerLength !== undefined) headers['Inference-Header-Content-Length'] = String(enc.headerLength);
    const a = await this.send('POST', `${modelPath(name, opts.version)}/infer`, enc.body, headers, opts.signal);
    if (a.status !== 200) throw errorOf(a);
    const hl = a.headers['inference-header-content-length'];
    return parseInferResponse(a.body, hl === undefined ? undefined : Number(hl));
  }

  /** Typed results for one JPEG/PNG image, or with `annotate` the annotated PNG's bytes. */
  async predict(name: string, image: Uint8Array, opts: PredictOptions & { annotate: true }): Promise<Buffer>;
  async predict(name: string, image: Uint8Array, opts?: PredictOptions): Promise<PredictAnswer>;
  async predict(name: string, image: Uint8Array, opts: PredictOptions = {}): Promise<PredictAnswer | Buffer> {
    const q = new URLSearchParams();
    if (opts.annotate) q.set('annotate', '1');
    if (opts.confidence !== undefined) q.set('confidence', String(opts.confidence));
    if (opts.topK !== undefined) q.set('top_k', String(opts.topK));
    if (opts.version !== undefined) q.set('version', String(opts.version));
    const [owner, model] = splitId(name);
    const qs = q.toString();
    const path = `/v1/models/${encodeURIComponent(owner)}/${encodeURIComponent(model)}/predict${qs ? `?${qs}` : ''}`;
    const a = await this.send(
      'POST',
      path,
      Buffer.from(image.buffer, image.byteOffset, image.byteLength),
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
      undefined,
      opts.lastEventId ? { 'Last-Event-ID': opts.lastEventId } : {},
      opts.signal,
      0,
    );
    if (res.statusCode !== 200) throw errorOf(await collect(res));
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

  private async send(
    method: string,
    path: string,
    body?: Buffer,
    headers: Record<string, string> = {},
    signal?: AbortSignal,
  ): Promise<Answer> {
    return collect(await this.open(method, path, body, headers, signal, this.timeoutMs));
  }

  private open(
    method: string,
    path: string,
    body: Buffer | undefined,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
    timeoutMs: number,
  ): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = request({
        socketPath: this.socket,
        method,
        path,
        signal,
        headers: { ...headers, ...(body ? { 'Content-Length': String(body.length) } : {}) },
      });
      idleTimeout(
        req,
        timeoutMs,
        () =>
          new OutpostError(
            'API_UNREACHABLE',
            `the agent at ${this.socket} did not answer ${method} ${path} within ${timeoutMs} ms`,
          ),
      );
      req.on('response', resolve);
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err instanceof OutpostError) return reject(err);
        if (err.name === 'AbortError') return reject(err);
        const why =
          err.code === 'ENOENT'
            ? 'no socket there (is the agent running?)'
            : err.code === 'ECONNREFUSED'
              ? 'nobody listens on it (is the agent running?)'
              : err.code === 'EACCES'
                ? "permission denied (is your user in the socket's group?)"
                : err.message;
        reject(
          new OutpostError('API_UNREACHABLE', `cannot reach the agent at ${this.socket}: ${why}`, {
            socket: this.socket,
            errno: err.code,
          }),
        );
      });
      req.end(body);
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

function modelPath(name: string, version?: number): string {
  return `/v2/models/${encodeURIComponent(name)}${version === undefined ? '' : `/versions/${version}`}`;
}

function splitId(name: string): [string, string] {
  const i = name.indexOf('/');
  if (i <= 0 || i === name.length - 1)
    throw new OutpostError('USAGE', `model "${name}" must be owner/name`, { model: name });
  return [name.slice(0, i), name.slice(i + 1)];
}

function collect(res: IncomingMessage): Promise<Answer> {
  return collectAnswer(res, (why) => new OutpostError('API_BAD_RESPONSE', `the agent's answer: ${why}`));
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
