import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCloud, type Cloud } from '../../cloud-broker/cloud.js';
import { rawConnect, type RawAnswer } from '../helpers/raw-http.js';
import { testDatabase } from '../helpers/test-db.js';
import { startAgent, type Harness } from './api-harness.js';

/**
 * HTTP-level fuzzing of the two servers Outpost exposes (issue 11): the cloud API over TCP and
 * the agent's Unix socket, with real raw sockets. Requests are generated with a fixed seed:
 * malformed request lines, header names and values with control characters, broken chunked
 * framing, lengths that lie, oversized headers. The contract: no crash, no 5xx, every 4xx carries
 * an error code, or the connection is closed; and the server still answers afterwards with
 * bounded memory (both run in this process, so its RSS is theirs).
 */
const SEED = 1103;
const RUNS = 160;

const token = fc.stringMatching(/^[A-Za-z!#$%&'*+.^_`|~-]{1,12}$/);
const junk = fc.string({ unit: 'binary', maxLength: 40 });
const methodArb = fc.oneof(
  fc.constantFrom('GET', 'POST', 'PUT', 'HEAD', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT'),
  token,
  junk,
);
const pathArb = (paths: string[]) =>
  fc.oneof(
    fc.constantFrom(...paths),
    fc.constantFrom(...paths).chain((p) => fc.string({ maxLength: 30 }).map((s) => p + encodeURI(s))),
    fc.string({ maxLength: 60 }).map((s) => `/${s}`),
    junk,
    fc.constant('*'),
    fc.constant(`/${'a'.repeat(20_000)}`),
  );
const versionArb = fc.oneof(fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1.1 extra', 'HTTP/9', ''), junk);
const headerArb = fc.oneof(
  fc.tuple(token, fc.string({ maxLength: 40 })),
  fc.tuple(junk, junk),
  fc.tuple(fc.constantFrom('Content-Length', 'Transfer-Encoding', 'Authorization', 'Content-Type', 'Expect'), junk),
  fc.tuple(fc.constant('Content-Length'), fc.oneof(fc.nat().map(String), fc.constant('-1'), fc.constant('1, 2'))),
  fc.tuple(fc.constant('X-Big'), fc.constant('b'.repeat(20_000))),
);
const bodyArb = fc.oneof(
  fc.constant(''),
  fc.string({ maxLength: 200 }),
  // chunked framing, valid or not
  fc
    .array(
      fc.tuple(
        fc.oneof(
          fc.nat({ max: 64 }).map((n) => n.toString(16)),
          junk,
        ),
        fc.string({ maxLength: 64 }),
      ),
      { maxLength: 4 },
    )
    .map(
      (chunks) =>
        chunks.map(([size, data]) => `${size}\r\n${data}\r\n`).join('') +
        fc.sample(fc.constantFrom('0\r\n\r\n', '', 'zz\r\n'), 1)[0],
    ),
);
const requestArb = (paths: string[]) =>
  fc
    .record({
      method: methodArb,
      path: pathArb(paths),
      version: versionArb,
      headers: fc.array(headerArb, { maxLength: 6 }),
      chunked: fc.boolean(),
      body: bodyArb,
    })
    .map(
      (r) =>
        `${r.method} ${r.path} ${r.version}\r\nHost: fuzz\r\n${r.chunked ? 'Transfer-Encoding: chunked\r\n' : ''}` +
        `${r.headers.map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n${r.body}`,
    );

/** Known hard cases, sent in every run next to the generated ones. */
const CLASSICS = [
  'GET / HTTP/1.1\r\n\r\n',
  '\r\n\r\n',
  'GARBAGE\r\n\r\n',
  'GET /v1/health HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  'POST /v1/users HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n',
  'POST /v1/users HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\nContent-Length: 20\r\n\r\n',
  'GET /v1/health HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n',
  'GET /v1/health HTTP/1.1\r\nHo st: a\r\n\r\n',
  `GET /v1/health HTTP/1.1\r\nHost: a\r\n${'X-A: b\r\n'.repeat(3000)}\r\n`,
  'GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n',
  'GET /v2/models/%E0%A4%A/ready HTTP/1.1\r\nHost: a\r\n\r\n',
  'POST /v2/models/acme%2Fclassifier/infer HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{"inputs": [',
  'POST /v2/models/acme%2Fclassifier/infer HTTP/1.1\r\nInference-Header-Content-Length: 99999\r\nContent-Length: 4\r\n\r\n{}{}',
];

async function fuzz(
  connect: () => ReturnType<typeof rawConnect>,
  paths: string[],
): Promise<{ answers: RawAnswer[]; bad: string[] }> {
  const requests = [...CLASSICS, ...fc.sample(requestArb(paths), { seed: SEED, numRuns: RUNS })];
  const answers: RawAnswer[] = [];
  const bad: string[] = [];
  // A few at a time: the point is bad input, not load.
  for (let i = 0; i < requests.length; i += 8) {
    await Promise.all(
      requests.slice(i, i + 8).map(async (req) => {
        const c = await connect();
        c.write(Buffer.from(req, 'latin1'));
        // Half-close so a request waiting for more body ends instead of timing out.
        c.socket.end();
        const a = await c.answer(8_000);
        c.close();
        answers.push(a);
        const serverError = a.status !== null && a.status >= 500;
        const uncoded = a.status !== null && a.status >= 400 && a.code === null;
        if (serverError || uncoded) bad.push(`${JSON.stringify(req.slice(0, 120))} -> ${a.text.slice(0, 160)}`);
      }),
    );
  }
  return { answers, bad };
}

describe('HTTP fuzzing over raw sockets', () => {
  let dir: string;
  let cloud: Cloud;
  let agent: Harness;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'outpost-http-fuzz-'));
    cloud = await startCloud({ dataDir: dir, httpPort: 0, mqttPort: 0, database: await testDatabase() });
    agent = await startAgent({ kinds: ['classifier'] });
  });
  afterAll(async () => {
    await agent?.close();
    await cloud?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('the cloud API answers every malformed request with a coded 4xx or closes, and keeps serving', async () => {
    const rss = process.memoryUsage().rss;
    const port = Number(new URL(cloud.httpUrl).port);
    const { answers, bad } = await fuzz(
      () => rawConnect({ port }),
      ['/v1/health', '/v1/whoami', '/v1/blobs/' + 'a'.repeat(64), '/v1/models', '/v1/users', '/v1/devices'],
    );
    expect(bad).toEqual([]);
    expect(answers.filter((a) => a.status !== null && a.status >= 400).length).toBeGreaterThan(RUNS / 2);
    expect((await fetch(`${cloud.httpUrl}/v1/health`)).status).toBe(200);
    expect(process.memoryUsage().rss - rss).toBeLessThan(256 * 1024 * 1024);
  });

  it('the agent socket answers every malformed request with a coded 4xx or closes, and keeps serving', async () => {
    const rss = process.memoryUsage().rss;
    const { answers, bad } = await fuzz(
      () => rawConnect(agent.socket),
      [
        '/v2/health/ready',
        '/v2/models',
        '/v2/models/acme%2Fclassifier/infer',
        '/v1/models/acme/classifier/predict',
        '/metrics',
      ],
    );
    expect(bad).toEqual([]);
    expect(answers.filter((a) => a.status !== null && a.status >= 400).length).toBeGreaterThan(RUNS / 2);
    expect((await agent.client.health()).live).toBe(true);
    expect(process.memoryUsage().rss - rss).toBeLessThan(256 * 1024 * 1024);
  });
});
