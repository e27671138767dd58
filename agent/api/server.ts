import { moduleLogger } from '../../protocol/log.js';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { OutpostError, toOutpostError } from '../../protocol/errors/index.js';
import type { ApiContext, Route } from './context.js';
import { SseClients } from './events.js';
import { MemoryBudget } from './admission.js';
import { ConcurrencyLimiter } from './limiter.js';
import { refuseOverCap } from './connection-cap.js';
import { ClientGone, errorBody, sendError, splitUrl } from './http.js';
import type { HotRequest } from './lane/connection.js';
import { DEFAULT_HEAD_LIMITS, type RequestHead } from './lane/parse.js';
import { createLane, laneSupported, type Lane } from './lane/server.js';
import type { LaneAnswer } from './lane/answer.js';
import { runInfer } from './routes/infer.js';
import { BufferPool } from './body.js';
import { ApiMetrics, type Tally } from './metrics.js';
import { ROUTES } from './routes/index.js';
import { ShmRegistry } from './shm.js';
import { listenOnSocket } from './socket.js';
import { DEFAULT_LIMITS, type ApiLimits, type ApiServerOptions } from './types.js';

/**
 * The agent's local API: HTTP/1.1 over a Unix socket (docs/local-api.md). This file owns the
 * lifecycle (listen, limits, close) and the dispatch; each route group lives in routes/.
 *
 * Invariants: nothing a client sends can throw out of a handler (every failure becomes a coded
 * answer or a closed connection); every request that reached a model releases its slot; close()
 * lets requests in flight finish (up to a grace period) before it cuts connections.
 */
export interface ApiServer {
  readonly path: string;
  readonly metrics: ApiMetrics;
  /** Resolves when the socket is listening with its mode applied. */
  listen(path: string, mode?: number): Promise<void>;
  close(graceMs?: number): Promise<void>;
  /** Applies reloadable limits (the agent's SIGHUP) to requests that start from now on. */
  setLimits(
    next: Partial<
      Pick<
        ApiLimits,
        'maxBodyBytes' | 'maxConcurrentPerModel' | 'maxBytesInFlight' | 'requestTimeoutMs' | 'maxConnections'
      >
    >,
  ): void;
}

interface Match {
  route: Route;
  params: Record<string, string>;
}

function match(segments: string[]): Match | undefined {
  outer: for (const route of ROUTES) {
    if (route.pattern.length !== segments.length) continue;
    const params: Record<string, string> = {};
    for (let i = 0; i < segments.length; i++) {
      const p = route.pattern[i]!;
      if (p.startsWith(':')) params[p.slice(1)] = segments[i]!;
      else if (p !== segments[i]) continue outer;
    }
    return { route, params };
  }
  return undefined;
}

/** The batch sizes of every served model that batches (ModelDescription.batches), for /metrics. */
function batchTally(runtime: ApiServerOptions['runtime']): Tally {
  const out: Tally = [];
  for (const m of runtime.list()) {
    const b = m.activeVersion === null ? undefined : runtime.describe(m.id)?.batches;
    if (b) out.push({ labels: { model: m.id }, seen: b.runs });
  }
  return out;
}

export function createApiServer(opts: ApiServerOptions): ApiServer {
  const limits: ApiLimits = { ...DEFAULT_LIMITS, ...opts.limits };
  const headersTimeoutMs = limits.headersTimeoutMs;
  limits.headersTimeoutMs = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  const log = moduleLogger(opts.log, 'api');
  const limiter = new ConcurrencyLimiter(limits.maxConcurrentPerModel);
  const memory = new MemoryBudget(limits.maxBytesInFlight);
  const metrics = new ApiMetrics(
    () => limiter.snapshot().map((s) => ({ labels: { model: s.model }, value: s.inFlight })),
    () => sse.size,
    () => batchTally(opts.runtime),
  );
  const sse = new SseClients(
    log,
    { heartbeatMs: limits.heartbeatMs, maxBuffered: limits.sseMaxBufferedBytes },
    (e) => metrics.loads.inc({ model: e.model, event: e.type }),
    opts.events,
  );
  const sockets = new Set<Socket>();
  let lane: Lane | undefined;
  let closing = false;
  let inFlight = 0;
  let idle: (() => void) | undefined;
  let socketPath = '';

  const ctx: ApiContext = {
    runtime: opts.runtime,
    log,
    limits,
    limiter,
    memory,
    metrics,
    sse,
    shm: new ShmRegistry(opts.shm),
    pool: new BufferPool(),
    version: opts.version ?? '0.1.0',
    startedAt: Date.now(),
    status: opts.status,
    isClosing: () => closing,
    connections: () => sockets.size + (lane?.size ?? 0),
  };

  const server: Server = createServer({
    requestTimeout: limits.requestTimeoutMs,
    headersTimeout: limits.headersTimeoutMs,
    connectionsCheckingInterval: limits.timeoutCheckMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // Host names nothing on a Unix socket; Node's default would answer 400 with no code.
    requireHostHeader: false,
  });

  // Real sockets only when node:http listens itself (no lane); the lane counts its own.
  server.on('connection', (s: Socket) => {
    if (lane) return;
    const over = refuseOverCap(s, sockets.size, limits.maxConnections);
    if (over) return void metrics.rejected.inc({ code: over.code });
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  // Malformed HTTP, oversized headers and the request/headers timeouts all land here (Node's
  // parser sees them before any route); answer with a coded body when the socket can still take it.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    const code = err.code ?? '';
    if (code === 'ECONNRESET' || code === 'EPIPE' || !socket.writable) return void socket.destroy();
    const e =
      code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new OutpostError(
            'API_REQUEST_TIMEOUT',
            `the request was not received within ${limits.requestTimeoutMs} ms (headers within ${limits.headersTimeoutMs} ms)`,
          )
        : code === 'HPE_HEADER_OVERFLOW'
          ? new OutpostError('API_HEADERS_TOO_LARGE', 'the request headers are too large')
          : new OutpostError('API_BAD_HEADER', `the request is not valid HTTP/1.1 (${code || err.message})`, {
              parser: code,
            });
    metrics.rejected.inc({ code: e.code });
    log.debug({ err: { code, message: err.message } }, 'client error');
    // A response already under way cannot be replaced: cut the connection instead.
    if ((socket as Socket & { _httpMessage?: ServerResponse })._httpMessage?.headersSent) return void socket.destroy();
    const body = JSON.stringify(errorBody(e));
    socket.end(
      `HTTP/1.1 ${e.status} ${statusText(e.status)}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    inFlight++;
    const started = process.hrtime.bigint();
    let routeName = 'unmatched';
    res.on('error', () => {});
    req.on('error', () => {});
    res.on('close', () => {
      metrics.requests.inc({ route: routeName, status: String(res.statusCode) });
      metrics.requestSeconds.observe({ route: routeName }, Number(process.hrtime.bigint() - started) / 1e9);
      if (--inFlight === 0 && idle) idle();
    });
    void dispatch(req, res, (n) => (routeName = n));
  });

  async function dispatch(req: IncomingMessage, res: ServerResponse, setRoute: (n: string) => void): Promise<void> {
    try {
      const { segments, query } = splitUrl(req.url ?? '/');
      const m = match(segments);
      if (!m)
        throw new OutpostError(
          'NOT_FOUND',
          `no route ${req.method} /${segments.join('/').slice(0, 200)}; see docs/local-api.md`,
          { path: (req.url ?? '').slice(0, 200) },
        );
      setRoute(m.route.name);
      const handler = m.route.methods[req.method as 'GET' | 'POST'];
      if (!handler) {
        const allow = Object.keys(m.route.methods).join(', ');
        throw Object.assign(
          new OutpostError('API_METHOD_NOT_ALLOWED', `${req.method} is not allowed on this route; use ${allow}`, {
            allow,
          }),
          { allow },
        );
      }
      if (closing && m.route.name !== 'health_live')
        throw new OutpostError('API_SHUTTING_DOWN', 'the agent is stopping; retry after it restarts');
      await handler(req, res, { params: m.params, query }, ctx);
    } catch (err) {
      if (err instanceof ClientGone) {
        res.destroy();
        return;
      }
      const { e, headers } = refusal(err, req.url ?? '');
      // The unread rest of an oversized body must not be parsed as the next request.
      if (e.code === 'API_BODY_TOO_LARGE') headers.Connection = 'close';
      if (res.headersSent) res.destroy();
      else sendError(res, e, headers);
    }
  }

  /** Logs and counts a route's failure, and the headers its answer carries (both servers). */
  function refusal(err: unknown, url: string): { e: OutpostError; headers: Record<string, string> } {
    const e = toOutpostError(err);
    if (e.code === 'INTERNAL') log.error({ err, url: url.slice(0, 200) }, 'request failed');
    else log.debug({ code: e.code, url: url.slice(0, 200) }, 'request refused');
    if (e.status < 500 || e.code === 'API_SATURATED' || e.code === 'API_MEMORY_BUSY')
      metrics.rejected.inc({ code: e.code });
    const headers: Record<string, string> = {};
    const retry = e.details?.retryAfterSeconds;
    if (typeof retry === 'number') headers['Retry-After'] = String(retry);
    if (e.code === 'API_METHOD_NOT_ALLOWED') headers.Allow = String((err as { allow?: string }).allow ?? '');
    return { e, headers };
  }

  /**
   * The lane's hot route: POST .../infer with a Content-Length body, served by the same core as
   * node:http's infer route (routes/infer.ts runInfer), with the same accounting: in-flight
   * count for close(), the request metrics when the answer is closed, and refusals through
   * refusal(). Anything else, a chunked infer included, goes to node:http unchanged.
   */
  function hot(head: RequestHead): ((req: HotRequest) => Promise<LaneAnswer | undefined>) | undefined {
    if (head.method !== 'POST') return undefined;
    const params = inferParams(head.target);
    if (!params) return undefined;
    return async (req) => {
      inFlight++;
      const started = process.hrtime.bigint();
      let status = 200;
      req.life.once('close', () => {
        metrics.requests.inc({ route: 'infer', status: String(status) });
        metrics.requestSeconds.observe({ route: 'infer' }, Number(process.hrtime.bigint() - started) / 1e9);
        if (--inFlight === 0 && idle) idle();
      });
      const get = (name: string) => head.headers.find(([k]) => k === name)?.[1];
      try {
        if (closing) throw new OutpostError('API_SHUTTING_DOWN', 'the agent is stopping; retry after it restarts');
        const a = await runInfer(
          ctx,
          {
            params,
            contentType: get('content-type'),
            headerLength: get('inference-header-content-length'),
            contentLength: String(head.contentLength ?? 0),
          },
          req.readBody,
          req.life,
        );
        status = a.status;
        return a;
      } catch (err) {
        if (err instanceof ClientGone) return undefined;
        const { e, headers } = refusal(err, head.target);
        status = e.status;
        const body = Buffer.from(JSON.stringify(errorBody(e)), 'utf8');
        return {
          status: e.status,
          headers: { 'Content-Type': 'application/json', ...headers },
          parts: [body],
          byteLength: body.length,
          close: e.code === 'API_BODY_TOO_LARGE',
        };
      }
    };
  }

  /**
   * The infer route's params of a request target, or null when it is not an infer (a bad
   * %-escape included: node:http answers it). An app sends the same few targets over and over,
   * so each is split and matched once (at most 256 kept; the params are only read).
   */
  const targets = new Map<string, Record<string, string> | null>();
  function inferParams(target: string): Record<string, string> | null {
    let params = targets.get(target);
    if (params !== undefined) return params;
    let m: Match | undefined;
    try {
      m = match(splitUrl(target).segments);
    } catch {
      m = undefined;
    }
    params = m?.route.name === 'infer' ? m.params : null;
    if (targets.size >= 256) targets.clear();
    targets.set(target, params);
    return params;
  }

  if (opts.lane !== false && laneSupported()) {
    lane = createLane(
      {
        pool: ctx.pool,
        http: server,
        limits,
        head: DEFAULT_HEAD_LIMITS,
        hot,
        refused: (e) => {
          metrics.rejected.inc({ code: e.code });
          log.debug({ code: e.code, message: e.message }, 'client error');
        },
        closing: () => closing,
      },
      limits.timeoutCheckMs,
    );
  }

  return {
    get path() {
      return socketPath;
    },
    metrics,
    async listen(path: string, mode = 0o660) {
      await listenOnSocket(lane?.server ?? server, path, mode);
      socketPath = path;
      // sharedMemory: 'mmap' (zero copy, the outpost_shm addon) or 'pread' (agent/api/shm.ts).
      log.info({ socket: path, mode: mode.toString(8), sharedMemory: ctx.shm.mode }, 'local API listening');
    },
    setLimits(next) {
      Object.assign(limits, next);
      limits.headersTimeoutMs = Math.min(headersTimeoutMs, limits.requestTimeoutMs);
      limiter.setMax(limits.maxConcurrentPerModel);
      memory.setMax(limits.maxBytesInFlight);
      server.requestTimeout = limits.requestTimeoutMs;
      server.headersTimeout = limits.headersTimeoutMs;
    },
    async close(graceMs = 5_000) {
      if (closing) return;
      closing = true;
      sse.close();
      const listening = lane?.server ?? server;
      const closed = new Promise<void>((resolve) => listening.close(() => resolve()));
      if (lane) server.close(); // not listening: this stops its timeout checks
      lane?.closeIdle();
      server.closeIdleConnections();
      if (inFlight > 0) {
        await new Promise<void>((resolve) => {
          idle = resolve;
          setTimeout(resolve, graceMs).unref();
        });
      }
      server.closeAllConnections();
      lane?.destroyAll();
      for (const s of sockets) s.destroy();
      // After the requests in flight: they may still read or write their regions.
      ctx.shm.close();
      await closed;
      log.info({ socket: socketPath }, 'local API closed');
    },
  };
}

function statusText(status: number): string {
  return (
    (
      {
        400: 'Bad Request',
        408: 'Request Timeout',
        413: 'Payload Too Large',
        431: 'Request Header Fields Too Large',
      } as Record<number, string>
    )[status] ?? 'Error'
  );
}
