import http from 'node:http';
import { OutpostError, toOutpostError } from '../../protocol/errors/index.js';
import { moduleLogger, type Logger } from '../../protocol/log.js';
import { authorize } from '../auth/index.js';
import { FailureLimiter } from '../auth/failure-limiter.js';
import type { Db } from '../db/open.js';
import { DEFAULT_CLOUD_LIMITS, type CloudLimits } from '../limits.js';
import { authenticateLimited } from './auth-limit.js';
import { guardServer } from './guards.js';
import { sendError, sendJson } from './respond.js';
import type { Router } from './router.js';

export interface ApiServerDeps {
  db: Db;
  router: Router;
  log: Logger;
  /** Slow-client, connection and auth-failure bounds (cloud-broker/limits.ts); defaults when absent. */
  limits?: Pick<CloudLimits, 'http' | 'auth'>;
  /** Shared with the broker so that HTTP and MQTT guesses count together; one is made when absent. */
  authLimiter?: FailureLimiter;
}

/**
 * The cloud's HTTP server: every request is matched against the router, authenticated as the
 * route demands, and every failure is answered as an error body with the catalog's status. A
 * handler failure never takes the server down.
 */
export function createApiServer(deps: ApiServerDeps): http.Server {
  const log = moduleLogger(deps.log, 'http');
  const limits = deps.limits ?? DEFAULT_CLOUD_LIMITS;
  const limiter = deps.authLimiter ?? new FailureLimiter(limits.auth);
  // Node checks headersTimeout/requestTimeout every connectionsCheckingInterval (30 s by
  // default, settable only here): once a second keeps a short limit meaningful.
  // requireHostHeader off: Node would answer a Host-less request 400 with no body and no code;
  // no route depends on Host, so it gets the router's coded answer instead.
  const server = http.createServer({ connectionsCheckingInterval: 1_000, requireHostHeader: false }, (req, res) => {
    void handle(deps, limiter, log, req, res);
  });
  guardServer(server, limits.http, log);
  return server;
}

async function handle(
  deps: ApiServerDeps,
  limiter: FailureLimiter,
  log: Logger,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const started = process.hrtime.bigint();
  const method = req.method ?? 'GET';
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'http://localhost');
  } catch {
    url = new URL('http://localhost/');
  }
  try {
    const match = deps.router.match(method, url.pathname);
    if (match.kind === 'none')
      throw new OutpostError('NOT_FOUND', `no route ${method} ${url.pathname}; see docs/http-api.md`, {
        path: url.pathname,
      });
    if (match.kind === 'method-not-allowed') {
      res.setHeader('Allow', match.allow.join(', '));
      throw new OutpostError(
        'HTTP_METHOD_NOT_ALLOWED',
        `${url.pathname} does not take ${method}; it takes ${match.allow.join(', ')}`,
        { method, allow: match.allow },
      );
    }
    const { route, params } = match;
    let principal = null;
    if (route.access !== 'none') {
      principal = authenticateLimited(limiter, deps.db, req, log);
      authorize(principal, route.access);
    }
    const reply = await route.handler({ req, res, params, url, principal, log });
    if (reply) sendJson(res, reply.status ?? 200, reply.body);
  } catch (thrown) {
    const err = toOutpostError(thrown);
    if (err.code === 'INTERNAL' || err.code === 'IO_ERROR')
      log.error({ err: thrown, method, path: url.pathname }, 'request failed');
    if (res.headersSent) {
      // A stream broke mid-answer (client gone, disk error): nothing sane can be sent any more.
      res.destroy();
    } else {
      const retry = err.details?.retryAfterSeconds;
      if (typeof retry === 'number') res.setHeader('Retry-After', String(retry));
      sendError(req, res, err);
    }
  } finally {
    log.debug(
      { method, path: url.pathname, status: res.statusCode, ms: Number(process.hrtime.bigint() - started) / 1e6 },
      'request',
    );
  }
}
