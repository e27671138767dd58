import type { Handler } from '../context.js';
import { header, sendBytes, sendJson } from '../http.js';

/** GET /v1/events: Server-Sent Events of model changes (installed, activated, failed, rolled-back). */
export const events: Handler = (req, res, _p, ctx) => {
  ctx.sse.attach(res, header(req, 'last-event-id'));
};

/** GET /v1/status: the agent's models and the API's own state, plus what the daemon adds. */
export const status: Handler = async (_req, res, _p, ctx) => {
  const extra = ctx.status ? await ctx.status() : {};
  sendJson(res, 200, {
    agent: {
      version: ctx.version,
      pid: process.pid,
      uptimeSeconds: Math.round((Date.now() - ctx.startedAt) / 1000),
      rssBytes: process.memoryUsage().rss,
    },
    models: ctx.runtime.list().map((m) => {
      const served = m.activeVersion === null ? undefined : ctx.runtime.describe(m.id);
      return {
        ...m,
        ...(served ? { purpose: served.purpose, framework: served.framework, backend: served.backend } : {}),
      };
    }),
    api: {
      connections: ctx.connections(),
      inFlight: ctx.limiter.snapshot(),
      eventClients: ctx.sse.size,
      limits: ctx.limits,
    },
    ...extra,
  });
};

/** GET /metrics: Prometheus text exposition. */
export const metrics: Handler = (_req, res, _p, ctx) => {
  sendBytes(res, 200, Buffer.from(ctx.metrics.render(), 'utf8'), {
    'Content-Type': 'text/plain; version=0.0.4; charset=utf-8',
  });
};
