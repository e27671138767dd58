import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startAgent, type Harness } from './api-harness.js';

/**
 * api.maxConnections on a real agent socket, with the fast lane and with node:http alone: the
 * connection over the cap gets one coded 503 and is closed, the ones under it keep working, and
 * a slot freed by a closed connection is usable again; a raised limit applies to the next accept.
 */
let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

function open(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path, () => resolve(s));
    s.once('error', reject);
  });
}

/** Everything the server sends until it closes the connection (or `ms` passes). */
function readAll(s: Socket, ms = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`no close within ${ms} ms; got ${JSON.stringify(out)}`)), ms);
    s.on('data', (d) => {
      out += d.toString('latin1');
    });
    s.once('close', () => {
      clearTimeout(t);
      resolve(out);
    });
  });
}

/** One GET on an open keep-alive connection; resolves with the status line's code. */
function get(s: Socket, path: string): Promise<number> {
  return new Promise((resolve) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      const len = Number(/content-length: *(\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
      if (buf.length < end + 4 + len) return;
      s.off('data', onData);
      resolve(Number(buf.split(' ')[1]));
    };
    s.on('data', onData);
    s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
  });
}

/**
 * A connection the server keeps: the server learns of a client's close on a later turn of its
 * loop, so a refusal right after one is retried (bounded), never waited out with a fixed sleep.
 */
async function admitted(path: string): Promise<Socket> {
  for (let i = 0; i < 100; i++) {
    const s = await open(path);
    const verdict = await new Promise<'kept' | 'refused'>((resolve) => {
      const t = setTimeout(() => resolve('kept'), 200);
      s.once('data', () => {
        clearTimeout(t);
        resolve('refused');
      });
    });
    if (verdict === 'kept') return s;
    s.destroy();
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('no connection was admitted after 100 tries');
}

describe.each([
  { name: 'fast lane', lane: true },
  { name: 'node:http alone', lane: false },
])('api.maxConnections ($name)', ({ lane }) => {
  it('answers the connection over the cap 503 API_TOO_MANY_CONNECTIONS and serves the others', async () => {
    h = await startAgent({ kinds: ['classifier'], limits: { maxConnections: 2 }, lane });
    const a = await open(h.socket);
    const b = await open(h.socket);
    expect(await get(a, '/v2/health/live')).toBe(200);
    expect(await get(b, '/v2/health/live')).toBe(200);

    const c = await open(h.socket);
    const refused = await readAll(c);
    const [head, body] = refused.split('\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1\.1 503 /);
    expect(head).toMatch(/\r\nRetry-After: 1\r\n/);
    expect(head).toMatch(/\r\nConnection: close/);
    const err = JSON.parse(body!) as { code: string; details: { limit: number } };
    expect(err.code).toBe('API_TOO_MANY_CONNECTIONS');
    expect(err.details.limit).toBe(2);

    // The two admitted connections are untouched by the refusal.
    expect(await get(a, '/v2/models/acme%2Fclassifier/ready')).toBe(200);

    // A closed connection frees its slot.
    await new Promise<void>((resolve) => {
      b.once('close', () => resolve());
      b.destroy();
    });
    const d = await admitted(h.socket);
    expect(await get(d, '/v2/health/live')).toBe(200);

    // A raised limit (SIGHUP's path) admits the next connection.
    h.server.setLimits({ maxConnections: 3 });
    const e = await open(h.socket);
    expect(await get(e, '/v2/health/live')).toBe(200);
    for (const s of [a, d, e]) s.destroy();
  });
});
