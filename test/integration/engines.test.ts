import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { startHaproxy, missingHaproxy } from '../helpers/engines/haproxy.js';
import { missingNginx, startNginx } from '../helpers/engines/nginx.js';
import { missingPostgres, startPostgres } from '../helpers/engines/postgres.js';
import { missingRedis, startRedis } from '../helpers/engines/redis.js';
import { portOpen } from '../helpers/engines/service.js';
import { skipForPackage } from '../helpers/requires.js';
import { useTempDir } from '../helpers/temp-dir.js';

// The engines the scale-out tests stand on, each started from its Debian package and used for
// real once, so that a broken start fails here with its own message rather than deep in a test.
const tmp = useTempDir('outpost-engines-');
const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const s of stops.splice(0).reverse()) await s();
});

function redisCommand(port: number, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let out = '';
    s.on('data', (b) => {
      out += b.toString();
      if (out.endsWith('\r\n')) {
        s.end();
        resolve(out);
      }
    });
    s.on('error', reject);
    s.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
  });
}

describe.skipIf(skipForPackage(missingPostgres()))('PostgreSQL', () => {
  it('starts as a throw-away cluster, answers queries, and stops by its PID', async () => {
    const db = await startPostgres(tmp.dir);
    stops.push(() => db.stop());
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    const r = await client.query('SELECT 40 + 2 AS n, current_database() AS db');
    await client.end();
    expect(r.rows[0]).toEqual({ n: 42, db: 'outpost' });
    await db.stop();
    expect(db.process.exited).toBe(true);
    expect(await portOpen(db.port)).toBe(false);
  });
});

describe.skipIf(skipForPackage(missingRedis()))('Redis', () => {
  it('answers PING and SET/GET', async () => {
    const r = await startRedis(tmp.dir);
    stops.push(() => r.stop());
    expect(await redisCommand(r.port, 'PING')).toBe('+PONG\r\n');
    expect(await redisCommand(r.port, 'SET', 'k', 'v')).toBe('+OK\r\n');
    expect(await redisCommand(r.port, 'GET', 'k')).toBe('$1\r\nv\r\n');
  });
});

describe.skipIf(skipForPackage(missingHaproxy()))('haproxy', () => {
  it('balances HTTP over two backends and drops a dead one', async () => {
    const servers = await Promise.all(
      ['a', 'b'].map(async (name) => {
        const s = http.createServer((_req, res) => res.end(name));
        await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
        return { s, port: (s.address() as net.AddressInfo).port };
      }),
    );
    stops.push(async () => {
      for (const { s } of servers) await new Promise((r) => s.close(r));
    });
    const lb = await startHaproxy(
      tmp.dir,
      servers.map((s) => ({ host: '127.0.0.1', httpPort: s.port, mqttPort: s.port })),
    );
    stops.push(() => lb.stop());
    const get = async () => (await fetch(`http://127.0.0.1:${lb.httpPort}/`, { keepalive: false })).text();
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) seen.add(await get());
    expect([...seen].sort()).toEqual(['a', 'b']);
    servers[0]!.s.closeAllConnections();
    await new Promise((r) => servers[0]!.s.close(r));
    // Health checks every 300 ms, down after 2: wait until only b answers, bounded by attempts.
    let onlyB = false;
    for (let i = 0; i < 100 && !onlyB; i++) {
      const answers = await Promise.all([get(), get()]).catch(() => ['x']);
      onlyB = answers.every((a) => a === 'b');
      if (!onlyB) await new Promise((r) => setTimeout(r, 100));
    }
    expect(onlyB).toBe(true);
  });
});

describe.skipIf(skipForPackage(missingNginx()))('nginx', () => {
  it('serves a folder with Range', async () => {
    const root = join(tmp.dir, 'blobs');
    await (await import('node:fs/promises')).mkdir(root);
    await writeFile(join(root, 'f'), 'abcdefghij');
    const n = await startNginx(tmp.dir, root);
    stops.push(() => n.stop());
    const whole = await fetch(`${n.url}f`);
    expect(await whole.text()).toBe('abcdefghij');
    const part = await fetch(`${n.url}f`, { headers: { Range: 'bytes=2-4' } });
    expect(part.status).toBe(206);
    expect(await part.text()).toBe('cde');
  });
});
