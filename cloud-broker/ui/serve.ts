import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { OutpostError } from '../../protocol/errors/index.js';
import type { Route } from '../http/router.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/**
 * Where `npm run build` (cloud-broker/ui/build.mjs) puts the bundle: `static/` beside the compiled
 * dist/cloud-broker/ui/serve.js, which is this file's folder in an installed package; from the
 * sources (tests, `npm run outpost`) the same folder under the repository's dist/.
 */
export const UI_DIRS = [path.join(HERE, 'static'), path.join(HERE, '../../dist/cloud-broker/ui/static')];

/** The files the page consists of; nothing else under /ui/ is served. */
const FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
  'favicon.svg': 'image/svg+xml',
};

/**
 * Every asset comes from this cloud ('self'), nothing from a CDN: clouds on factory floors are
 * often cut off from the internet. Inline scripts are refused, so an injected string can never run.
 */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
  "font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

interface Asset {
  body: Buffer;
  etag: string;
}

/**
 * `GET /ui/` and its assets, on the API's own port with no token (the page holds no data; every
 * API call it makes carries the token the operator typed). Files are read once and kept in
 * memory: the whole bundle is some tens of KB. A missing bundle answers 503 UI_NOT_BUILT and is
 * looked for again at the next request, so building while the cloud runs works.
 */
export function pageRoutes(dirs: readonly string[] = UI_DIRS): Route[] {
  let cache: Map<string, Asset> | null = null;
  const load = (): Map<string, Asset> => {
    if (cache) return cache;
    const dir = dirs.find((d) => fs.existsSync(path.join(d, 'index.html')));
    if (!dir)
      throw new OutpostError(
        'UI_NOT_BUILT',
        `the web page is not built (looked in ${dirs.join(', ')}); run \`npm run build\``,
        { dirs },
      );
    const m = new Map<string, Asset>();
    for (const name of Object.keys(FILES)) {
      const body = fs.readFileSync(path.join(dir, name));
      m.set(name, { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
    }
    return (cache = m);
  };
  const serve: Route['handler'] = async ({ req, res, params }) => {
    const name = params.file ?? 'index.html';
    const type = FILES[name];
    if (!type) throw new OutpostError('NOT_FOUND', `the page has no file "${name}"; open /ui/`, { path: req.url });
    const asset = load().get(name)!;
    res.setHeader('Content-Type', type);
    res.setHeader('ETag', asset.etag);
    // Always revalidate (a 304 is cheap): an upgraded cloud must never run yesterday's script.
    res.setHeader('Cache-Control', 'no-cache');
    res.setHeader('Content-Security-Policy', CSP);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    if (req.headers['if-none-match'] === asset.etag) {
      res.statusCode = 304;
      res.end();
      return;
    }
    res.statusCode = 200;
    res.setHeader('Content-Length', asset.body.length);
    res.end(req.method === 'HEAD' ? undefined : asset.body);
  };
  return [
    {
      method: 'GET',
      path: '/ui',
      access: 'none',
      handler: async ({ res }) => {
        res.statusCode = 308;
        res.setHeader('Location', '/ui/');
        res.end();
      },
    },
    { method: 'GET', path: '/ui/', access: 'none', handler: serve },
    { method: 'GET', path: '/ui/:file', access: 'none', handler: serve },
    { method: 'HEAD', path: '/ui/:file', access: 'none', handler: serve },
  ];
}
