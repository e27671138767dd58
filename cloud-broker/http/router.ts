import type { IncomingMessage, ServerResponse } from 'node:http';
import { OutpostError } from '../../protocol/errors/index.js';
import type { Logger } from '../../protocol/log.js';
import type { Access, Principal } from '../auth/index.js';

export interface RouteContext {
  req: IncomingMessage;
  res: ServerResponse;
  /** Decoded `:name` segments of the route's path. */
  params: Record<string, string>;
  url: URL;
  /** null only on routes with access `none`. */
  principal: Principal | null;
  log: Logger;
}

/** A JSON answer. A handler that streams its own answer (blobs) returns nothing. */
export interface Reply {
  status?: number;
  body: unknown;
}

export type Handler = (ctx: RouteContext) => Promise<Reply | void>;

export interface Route {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE' | 'PATCH';
  /** e.g. `/v1/models/:owner/:name`; a `:param` matches one non-empty segment. */
  path: string;
  access: Access;
  handler: Handler;
}

interface Compiled extends Route {
  pattern: RegExp;
  names: string[];
}

export type Match =
  | { kind: 'route'; route: Route; params: Record<string, string> }
  | { kind: 'method-not-allowed'; allow: string[] }
  | { kind: 'none' };

/**
 * The API's route table. Each route group (one file per group: system, blobs, models, apps, and
 * later the fleet's) adds its routes with `add`; the server consults `match` for every request.
 */
export class Router {
  private readonly routes: Compiled[] = [];

  add(...routes: Route[]): this {
    for (const r of routes) {
      const names: string[] = [];
      const source = r.path
        .split('/')
        .map((seg) => {
          if (!seg.startsWith(':')) return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
          names.push(seg.slice(1));
          return '([^/]+)';
        })
        .join('/');
      if (this.routes.some((c) => c.method === r.method && c.pattern.source === `^${source}$`)) {
        throw new Error(`route ${r.method} ${r.path} is registered twice`);
      }
      this.routes.push({ ...r, pattern: new RegExp(`^${source}$`), names });
    }
    return this;
  }

  match(method: string, pathname: string): Match {
    const allow = new Set<string>();
    for (const r of this.routes) {
      const m = r.pattern.exec(pathname);
      if (!m) continue;
      if (r.method !== method) {
        allow.add(r.method);
        continue;
      }
      const params: Record<string, string> = {};
      r.names.forEach((n, i) => {
        try {
          params[n] = decodeURIComponent(m[i + 1]);
        } catch {
          throw new OutpostError('BAD_REQUEST', `path segment "${m[i + 1]}" is not valid percent-encoding`, { key: n });
        }
      });
      return { kind: 'route', route: r, params };
    }
    return allow.size > 0 ? { kind: 'method-not-allowed', allow: [...allow] } : { kind: 'none' };
  }

  /** `METHOD path` of every route, for logs and docs checks. */
  list(): string[] {
    return this.routes.map((r) => `${r.method} ${r.path}`);
  }
}
