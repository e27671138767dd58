import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentClient } from '../../agent/client/index.js';
import { ConnectionPool } from '../../agent/client/connection.js';
import { codeOfRejection } from '../helpers/error-code.js';
import { useTempDir } from '../helpers/temp-dir.js';

/**
 * The client's own HTTP/1.1 connections (agent/client/connection.ts) against real servers on a
 * Unix socket: node:http (what the agent runs) and raw net servers that answer what node:http
 * never would (a closed keep-alive connection, a cut answer, silence, bytes out of step).
 */
const tmp = useTempDir('outpost-conn-');
const servers: (Server | HttpServer)[] = [];
const pools: ConnectionPool[] = [];
afterEach(async () => {
  for (const p of pools.splice(0)) p.close();
  for (const s of servers.splice(0)) {
    (s as HttpServer).closeAllConnections?.();
    await new Promise((r) => s.close(r));
  }
});

async function listen<T extends Server | HttpServer>(s: T): Promise<{ path: string; connections: () => number }> {
  let n = 0;
  s.on('connection', (c: Socket) => {
    n++;
    c.on('error', () => {});
  });
  const path = join(tmp.dir, `s${servers.length}.sock`);
  servers.push(s);
  await new Promise<void>((r) => s.listen(path, r));
  return { path, connections: () => n };
}

function pool(path: string): ConnectionPool {
  const p = new ConnectionPool(path);
  pools.push(p);
  return p;
}

const get = (p: ConnectionPool, path = '/x', timeoutMs = 10_000, signal?: AbortSignal) =>
  p.send({ method: 'GET', path, headers: {}, timeoutMs, signal });

/** A raw server: `answer(request text, socket, nth request on this connection)`. */
function rawServer(answer: (req: string, s: Socket, nth: number) => void): Server {
  return createServer((s) => {
    let nth = 0;
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      const head = buf.slice(0, end);
      const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
      if (buf.length < end + 4 + length) return;
      buf = buf.slice(end + 4 + length);
      answer(head, s, nth++);
    });
  });
}

describe('ConnectionPool', () => {
  it('keeps one connection alive across sequential requests, and sends bodies and headers intact', async () => {
    const seen: { headers: Record<string, unknown>; body: string }[] = [];
    const srv = await listen(
      createHttpServer((req, res) => {
        const chunks: Buffer[] = [];
        req
          .on('data', (c) => chunks.push(c))
          .on('end', () => {
            seen.push({ headers: req.headers, body: Buffer.concat(chunks).toString() });
            res.end(`echo ${req.method} ${req.url}`);
          });
      }),
    );
    const p = pool(srv.path);
    for (let i = 0; i < 5; i++) {
      const parts = [Buffer.from('ab'), new Uint8Array([99, 100]), Buffer.from(String(i))];
      const a = await p.send({
        method: 'POST',
        path: `/v2/m%2Fn/infer?i=${i}`,
        headers: { 'X-Test': 'yes' },
        parts,
        byteLength: 5,
        timeoutMs: 10_000,
      });
      expect(a.status).toBe(200);
      expect(a.body.toString()).toBe(`echo POST /v2/m%2Fn/infer?i=${i}`);
    }
    expect(seen.map((s) => s.body)).toEqual(['abcd0', 'abcd1', 'abcd2', 'abcd3', 'abcd4']);
    expect(seen[0]!.headers['x-test']).toBe('yes');
    expect(srv.connections()).toBe(1);
  });

  it('opens one connection per concurrent request and reuses them afterwards', async () => {
    const srv = await listen(createHttpServer((_req, res) => setTimeout(() => res.end('ok'), 20)));
    const p = pool(srv.path);
    await Promise.all(Array.from({ length: 4 }, () => get(p)));
    await Promise.all(Array.from({ length: 4 }, () => get(p)));
    expect(srv.connections()).toBe(4);
  });

  it('gives each of many concurrent answers its own bytes, though every connection reads into one buffer', async () => {
    // Large answers written in pieces, so that reads of different connections interleave.
    const size = 300 * 1024;
    const srv = await listen(
      createHttpServer((req, res) => {
        const fill = Number(new URL(req.url!, 'http://x').searchParams.get('fill'));
        const body = Buffer.alloc(size, fill);
        res.writeHead(200, { 'Content-Length': String(size) });
        let at = 0;
        const step = () => {
          res.write(body.subarray(at, at + 50_000));
          at += 50_000;
          if (at < size) setTimeout(step, 1);
          else res.end();
        };
        step();
      }),
    );
    const p = pool(srv.path);
    for (let round = 0; round < 3; round++) {
      const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => get(p, `/x?fill=${i + round * 8}`)));
      answers.forEach((a, i) => {
        expect(a.body.length).toBe(size);
        expect(a.body.every((b) => b === i + round * 8)).toBe(true);
      });
    }
  });

  it('decodes a chunked answer from node:http', async () => {
    const srv = await listen(
      createHttpServer((_req, res) => {
        res.write('hello, ');
        setTimeout(() => res.end('world'), 10);
      }),
    );
    const a = await get(pool(srv.path));
    expect(a.headers['transfer-encoding']).toBe('chunked');
    expect(a.body.toString()).toBe('hello, world');
  });

  it('sends a request again on a new connection when the agent closed the idle one unanswered', async () => {
    // The first connection answers once, then closes when the next request arrives, as a server
    // whose keep-alive timeout fired while the request was on its way.
    const srv = await listen(
      rawServer((_req, s, nth) => {
        if (nth === 0 && srv.connections() === 1) s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst');
        else if (srv.connections() === 1) s.destroy();
        else s.write('HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond');
      }),
    );
    const p = pool(srv.path);
    expect((await get(p)).body.toString()).toBe('first');
    expect((await get(p)).body.toString()).toBe('second');
    expect(srv.connections()).toBe(2);
  });

  it('does not resend a request whose answer was cut, and drops that connection', async () => {
    let requests = 0;
    const srv = await listen(
      rawServer((_req, s) => {
        requests++;
        s.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
      }),
    );
    expect(await codeOfRejection(get(pool(srv.path)))).toBe('API_BAD_RESPONSE');
    expect(requests).toBe(1);
  });

  it('never reuses a connection that carried bytes after its answer', async () => {
    const srv = await listen(
      rawServer((_req, s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n')),
    );
    const p = pool(srv.path);
    await get(p);
    await get(p);
    expect(srv.connections()).toBe(2);
  });

  it('gives up a silent agent after the timeout with API_UNREACHABLE', async () => {
    const srv = await listen(rawServer(() => {}));
    expect(await codeOfRejection(get(pool(srv.path), '/x', 100))).toBe('API_UNREACHABLE');
  });

  it('rejects with an AbortError when the signal aborts, before or during the request', async () => {
    const srv = await listen(rawServer(() => {}));
    const p = pool(srv.path);
    const ac = new AbortController();
    const pending = get(p, '/x', 10_000, ac.signal);
    setTimeout(() => ac.abort(), 20);
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    await expect(get(p, '/x', 10_000, AbortSignal.abort())).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('stops writing into an output array when the answer stalls mid-tensor and the call aborts or times out', async () => {
    // A binary infer answer of 64 KiB of 1s, of which the server sends the head and half the tensor.
    const header = Buffer.from(
      JSON.stringify({
        model_name: 'm',
        outputs: [{ name: 'y', datatype: 'UINT8', shape: [65536], parameters: { binary_data_size: 65536 } }],
      }).padEnd(120, ' '),
    );
    const srv = await listen(
      rawServer((_req, s) => {
        s.write(
          `HTTP/1.1 200 OK\r\nInference-Header-Content-Length: ${header.length}\r\nContent-Length: ${header.length + 65536}\r\n\r\n`,
        );
        s.write(Buffer.concat([header, Buffer.alloc(32768, 1)]));
      }),
    );
    const into = new Uint8Array(65536);
    const ac = new AbortController();
    const client = new AgentClient({ socket: srv.path, timeoutMs: 300 });
    const infer = (signal?: AbortSignal) =>
      client.infer(
        'm',
        { x: { dtype: 'uint8', shape: [1], data: new Uint8Array(1) } },
        { outputs: [{ name: 'y', into }], signal },
      );
    const pending = infer(ac.signal);
    setTimeout(() => ac.abort(), 100);
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    expect(await codeOfRejection(infer())).toBe('API_UNREACHABLE');
    client.close();
    // What arrived is in place; nothing past it was written, and nothing after the call ended.
    const ones = into.indexOf(0);
    expect(ones).toBeGreaterThan(0);
    expect(into.subarray(ones).every((b) => b === 0)).toBe(true);
  });

  it('says why the agent is unreachable, and refuses line breaks in headers', async () => {
    const p = pool(join(tmp.dir, 'absent.sock'));
    const err = await get(p).catch((e: Error) => e);
    expect(err).toMatchObject({ code: 'API_UNREACHABLE' });
    expect((err as Error).message).toContain('is the agent running?');
    const injected = p.send({ method: 'GET', path: '/x', headers: { 'X-A': 'a\r\nX-B: b' }, timeoutMs: 1000 });
    expect(await codeOfRejection(injected)).toBe('USAGE');
    expect(await codeOfRejection(get(p, '/x HTTP/1.1\r\n'))).toBe('USAGE');
  });

  it('AgentClient.close() closes its idle keep-alive connections', async () => {
    const http = createHttpServer((_req, res) => res.end('{"live":true}'));
    const srv = await listen(http);
    const client = new AgentClient({ socket: srv.path });
    await client.health();
    const open = () => new Promise<number>((r, j) => http.getConnections((e, n) => (e ? j(e) : r(n))));
    expect(await open()).toBe(1);
    client.close();
    while ((await open()) > 0) await new Promise((r) => setTimeout(r, 10));
    expect(srv.connections()).toBe(1);
  });
});
