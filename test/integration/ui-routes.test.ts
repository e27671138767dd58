import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloudClient } from '../../cloud-broker/client/cloud-client.js';
import { openDb } from '../../cloud-broker/db/index.js';
import { createApiServer, Router } from '../../cloud-broker/http/index.js';
import { pageRoutes } from '../../cloud-broker/ui/serve.js';
import { silentLogger } from '../../protocol/log.js';
import { ensureUiBundle } from '../helpers/browser.js';
import { startTestFleet, type TestFleet } from '../helpers/fleet.js';

/**
 * The web page's routes over real HTTP against a real cloud: the static files at /ui/ (no token,
 * nothing from elsewhere), the read views (admin only; the models view for users too), and the
 * live event stream read the way the page reads it, with fetch().
 */
let f: TestFleet;
let userToken: string;

const get = (path: string, token?: string, headers: Record<string, string> = {}) =>
  fetch(f.cloud.httpUrl + path, { headers: { ...headers, ...(token ? { authorization: `Bearer ${token}` } : {}) } });

beforeAll(async () => {
  ensureUiBundle();
  f = await startTestFleet();
  userToken = (await new CloudClient({ url: f.cloud.httpUrl, token: f.adminToken }).createUser('alice')).token;
  await f.publish('acme/colors');
  await f.provision('cam-a', ['lobby']);
  await f.provision('cam-b', ['dock']);
});
afterAll(async () => {
  await f?.close();
});

describe('the page files', () => {
  it('serves /ui/ and its assets without a token, with a CSP that allows only this origin', async () => {
    const index = await get('/ui/');
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toMatch(/text\/html/);
    const csp = index.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    const html = await index.text();
    // Every asset the document names is a relative path on this cloud: no CDN, no web fonts.
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    expect(refs.sort()).toEqual(['app.css', 'app.js', 'favicon.svg']);
    for (const r of refs) {
      const a = await get(`/ui/${r}`);
      expect(a.status).toBe(200);
      const body = await a.text();
      expect(body).not.toMatch(/https?:\/\/(?!www\.w3\.org\/)/);
    }
    const etag = (await get('/ui/app.js')).headers.get('etag')!;
    expect((await get('/ui/app.js', undefined, { 'if-none-match': etag })).status).toBe(304);
  });

  it('redirects /ui to /ui/ and refuses files that are not part of the page', async () => {
    const r = await fetch(`${f.cloud.httpUrl}/ui`, { redirect: 'manual' });
    expect(r.status).toBe(308);
    expect(r.headers.get('location')).toBe('/ui/');
    const nope = await get('/ui/package.json');
    expect(nope.status).toBe(404);
    expect(((await nope.json()) as { code: string }).code).toBe('NOT_FOUND');
    expect((await get('/ui/..%2F..%2Fcatalog.db')).status).toBe(404);
  });

  it('answers 503 UI_NOT_BUILT when the bundle is missing, and serves it once built', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'outpost-ui-'));
    const db = openDb(join(dir, 'db.sqlite'), silentLogger);
    const server = createApiServer({
      db,
      router: new Router().add(...pageRoutes([join(dir, 'none')])),
      log: silentLogger,
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/ui/`);
      expect(res.status).toBe(503);
      expect(((await res.json()) as { code: string }).code).toBe('UI_NOT_BUILT');
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      db.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the read views', () => {
  it('stay closed without a token, and fleet views need the admin token', async () => {
    for (const p of ['/v1/fleet/devices', '/v1/fleet/devices/cam-a', '/v1/fleet/models', '/v1/events']) {
      const r = await get(p);
      expect(r.status).toBe(401);
      expect(((await r.json()) as { code: string }).code).toBe('AUTH_TOKEN_MISSING');
    }
    expect((await get('/v1/fleet/devices', userToken)).status).toBe(403);
    expect((await get('/v1/events', userToken)).status).toBe(403);
  });

  it('filters and pages the fleet, and validates the query once', async () => {
    const page = (await (await get('/v1/fleet/devices?tag=dock', f.adminToken)).json()) as {
      total: number;
      devices: { device: string; status: string | null }[];
      facets: { tags: string[] };
    };
    expect(page.total).toBe(1);
    expect(page.devices[0].device).toBe('cam-b');
    expect(page.facets.tags).toEqual(['dock', 'lobby']);
    for (const bad of ['?limit=0', '?offset=-1', '?state=sleepy', '?model=nope', '?tag=a%20b', '?color=red']) {
      const r = await get(`/v1/fleet/devices${bad}`, f.adminToken);
      expect(r.status, bad).toBe(400);
    }
    expect((await get('/v1/fleet/devices/ghost', f.adminToken)).status).toBe(404);
  });

  it('lists models with who published each version; device ids only for the admin', async () => {
    const admin = (await (await get('/v1/fleet/models', f.adminToken)).json()) as {
      models: {
        id: string;
        versions: { publishedBy: string | null; size: number; files: unknown[]; running: unknown }[];
      }[];
    };
    const v1 = admin.models.find((m) => m.id === 'acme/colors')!.versions[0];
    expect(v1.publishedBy).toBe('admin');
    expect(v1.files.length).toBeGreaterThan(0);
    expect(v1.size).toBeGreaterThan(0);
    expect(v1.running).toEqual({ count: 0, devices: [] });
    // A user sees public models and its own; acme/colors is private to acme.
    const user = (await (await get('/v1/fleet/models', userToken)).json()) as { models: unknown[] };
    expect(user.models).toEqual([]);
  });
});

describe('GET /v1/events', () => {
  it('streams a change naming the device when the fleet changes', async () => {
    const res = await get('/v1/events', f.adminToken);
    expect(res.headers.get('content-type')).toMatch(/text\/event-stream/);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const read = async (until: RegExp): Promise<string> => {
      while (!until.test(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended: ${text}`);
        text += decoder.decode(value, { stream: true });
      }
      return text;
    };
    await read(/event: hello/);
    await f.fleet.tagDevice('cam-a', ['pilot'], []);
    const got = await read(/event: change\ndata: (.*)\n\n/);
    const data = JSON.parse(/event: change\ndata: (.*)\n\n/.exec(got)![1]) as { devices: string[]; kinds: string[] };
    expect(data.devices).toContain('cam-a');
    expect(data.kinds).toContain('device');
    await reader.cancel();
  });
});
