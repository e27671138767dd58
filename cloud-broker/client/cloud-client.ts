import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import { OutpostError } from '../../protocol/errors/index.js';
import { parseModelId } from '../../protocol/ids.js';
import { collectAnswer, errorOfAnswer, idleTimeout, jsonOf, type Answer } from '../../agent/net/http-answer.js';
import type {
  AppDetail,
  AppModels,
  BlobAnswer,
  CreateVersionBody,
  CreatedUser,
  CreatedVersion,
  HealthAnswer,
  ModelDetail,
  ModelSummary,
  VersionDetail,
  WhoamiAnswer,
} from './types.js';

export type * from './types.js';

export interface CloudClientOptions {
  /** Base URL of the cloud's HTTP API, e.g. `http://127.0.0.1:8080` (a path prefix is kept). */
  url: string;
  token?: string;
  /** Idle time after which a request is given up (no bytes either way). Default 60 s. */
  idleTimeoutMs?: number;
}

interface RequestOptions {
  json?: unknown;
  /** Raw body streamed as-is; `size` becomes Content-Length. */
  stream?: { source: Readable; size: number; onProgress?: (sent: number, total: number) => void };
  signal?: AbortSignal;
}

// Network failures that mean "the cloud is not there", as opposed to a bug in the request.
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
]);

/**
 * A typed client of the cloud HTTP API (docs/http-api.md), used by the `outpost` CLI. Every
 * failure comes back as an OutpostError: the server's own code when it answered, otherwise
 * CLOUD_UNREACHABLE or CLOUD_BAD_RESPONSE. Uploads stream; nothing is buffered whole.
 */
export class CloudClient {
  readonly url: string;
  private readonly token: string | undefined;
  private readonly idleTimeoutMs: number;

  constructor(opts: CloudClientOptions) {
    let parsed: URL;
    try {
      parsed = new URL(opts.url);
    } catch {
      throw new OutpostError('USAGE', `cloud URL "${opts.url}" is not a URL; pass e.g. --cloud http://127.0.0.1:8080`, {
        url: opts.url,
      });
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new OutpostError('USAGE', `cloud URL "${opts.url}" must start with http:// or https://`, { url: opts.url });
    }
    this.url = opts.url.replace(/\/+$/, '');
    this.token = opts.token;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
  }

  /** Headers a download of `blobUrl()` must send (the blob routes need a token). */
  authHeaders(): Record<string, string> {
    return this.token ? { authorization: `Bearer ${this.token}` } : {};
  }

  blobUrl(sha256: string): string {
    return `${this.url}/v1/blobs/${sha256}`;
  }

  health(): Promise<HealthAnswer> {
    return this.json('GET', '/v1/health');
  }

  whoami(): Promise<WhoamiAnswer> {
    return this.json('GET', '/v1/whoami');
  }

  createUser(name: string): Promise<CreatedUser> {
    return this.json('POST', '/v1/users', { json: { name } });
  }

  /** true when the blob is stored (HEAD /v1/blobs/:sha256). */
  async hasBlob(sha256: string): Promise<boolean> {
    const a = await this.request('HEAD', `/v1/blobs/${sha256}`, {});
    if (a.status === 404) return false;
    if (a.status === 200) return true;
    throw this.errorOf(a);
  }

  /** Streams `size` bytes from `source` to the blob store; the server checks length and hash. */
  putBlob(
    sha256: string,
    size: number,
    source: Readable,
    onProgress?: (sent: number, total: number) => void,
    signal?: AbortSignal,
  ): Promise<BlobAnswer> {
    return this.json('PUT', `/v1/blobs/${sha256}`, { stream: { source, size, onProgress }, signal });
  }

  createVersion(owner: string, name: string, body: CreateVersionBody): Promise<CreatedVersion> {
    return this.json('POST', `/v1/models/${enc(owner)}/${enc(name)}/versions`, { json: body });
  }

  async listModels(): Promise<ModelSummary[]> {
    return (await this.json<{ models: ModelSummary[] }>('GET', '/v1/models')).models;
  }

  getModel(id: string): Promise<ModelDetail> {
    return this.json('GET', `/v1/models/${idPath(id)}`);
  }

  getVersion(id: string, version: number | 'latest'): Promise<VersionDetail> {
    return this.json('GET', `/v1/models/${idPath(id)}/versions/${version}`);
  }

  getApp(id: string): Promise<AppDetail> {
    return this.json('GET', `/v1/apps/${idPath(id, 'app')}`);
  }

  putApp(id: string, models: AppModels): Promise<AppDetail> {
    return this.json('PUT', `/v1/apps/${idPath(id, 'app')}`, { json: { models } });
  }

  private async json<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const a = await this.request(method, path, opts);
    if (a.status < 200 || a.status >= 300) throw this.errorOf(a);
    return jsonOf(
      a,
      () =>
        new OutpostError(
          'CLOUD_BAD_RESPONSE',
          `${method} ${this.url}${path} answered ${a.status} with a body that is not JSON; is this an Outpost cloud?`,
          { url: this.url + path, status: a.status },
        ),
    ) as T;
  }

  private errorOf(a: Answer): OutpostError {
    const { error: err, body } = errorOfAnswer(a);
    if (err.code === 'INTERNAL' && (body === undefined || (body as { code?: unknown }).code !== 'INTERNAL')) {
      return new OutpostError(
        'CLOUD_BAD_RESPONSE',
        `the cloud at ${this.url} answered HTTP ${a.status} without an Outpost error body; is this an Outpost cloud?`,
        { url: this.url, status: a.status },
      );
    }
    return err;
  }

  private request(method: string, path: string, opts: RequestOptions): Promise<Answer> {
    const target = new URL(this.url + path);
    const headers: Record<string, string | number> = { accept: 'application/json', ...this.authHeaders() };
    let payload: Buffer | undefined;
    if (opts.json !== undefined) {
      payload = Buffer.from(JSON.stringify(opts.json));
      headers['content-type'] = 'application/json';
      headers['content-length'] = payload.length;
    } else if (opts.stream) {
      headers['content-type'] = 'application/octet-stream';
      headers['content-length'] = opts.stream.size;
    }
    const lib = target.protocol === 'https:' ? https : http;
    return new Promise<Answer>((resolve, reject) => {
      let settled = false;
      const finish = (err: Error | null, answer?: Answer): void => {
        if (settled) return;
        settled = true;
        opts.signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve(answer!);
      };
      const req = lib.request(target, { method, headers, signal: opts.signal }, (res) => {
        // The server may answer (e.g. 401) before the upload ends: stop sending, keep the answer.
        if (opts.stream && !opts.stream.source.readableEnded) {
          opts.stream.source.unpipe(req);
          opts.stream.source.destroy();
        }
        collectAnswer(res, (why) => this.networkError(method, path, new Error(why))).then(
          (a) => finish(null, a),
          (e: Error) => finish(e),
        );
      });
      const onAbort = (): void =>
        finish(new OutpostError('CLOUD_UNREACHABLE', `${method} ${path} was cancelled`, { url: this.url }));
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      idleTimeout(req, this.idleTimeoutMs, () => Object.assign(new Error('idle timeout'), { code: 'ETIMEDOUT' }));
      req.on('error', (e) => finish(this.networkError(method, path, e)));
      if (payload) req.end(payload);
      else if (opts.stream) {
        const { source, size, onProgress } = opts.stream;
        let sent = 0;
        source.on('data', (c: Buffer) => {
          sent += c.length;
          onProgress?.(sent, size);
        });
        source.on('error', (e) => {
          req.destroy();
          finish(
            new OutpostError('IO_ERROR', `reading the upload for ${path} failed: ${e.message}`, { path }, { cause: e }),
          );
        });
        source.pipe(req);
      } else req.end();
    });
  }

  private networkError(method: string, path: string, e: Error & { code?: string }): OutpostError {
    if (e.code && UNREACHABLE.has(e.code)) {
      return new OutpostError(
        'CLOUD_UNREACHABLE',
        `cannot reach the cloud at ${this.url} (${e.code}); check --cloud / OUTPOST_CLOUD_URL or start one with \`outpost cloud start\``,
        { url: this.url, cause: e.code },
        { cause: e },
      );
    }
    if (e.name === 'AbortError')
      return new OutpostError('CLOUD_UNREACHABLE', `${method} ${path} was cancelled`, { url: this.url });
    return new OutpostError(
      'CLOUD_UNREACHABLE',
      `${method} ${this.url}${path} failed: ${e.message}`,
      { url: this.url, cause: e.code },
      { cause: e },
    );
  }
}

function enc(part: string): string {
  return encodeURIComponent(part);
}

/** Validates an `owner/name` id before it becomes part of a URL. */
function idPath(id: string, key = 'id'): string {
  const { owner, name } = parseModelId(id, key);
  return `${enc(owner)}/${enc(name)}`;
}
