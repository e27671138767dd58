import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePng, twoBlocksImage } from '../fixtures/images.js';
import { PYTHON } from '../helpers/python.js';
import { missingCommand, skipForPackage } from '../helpers/requires.js';
import { randomInput, startAgent, type Harness } from './api-harness.js';

/**
 * The agent's fast lane (agent/api/lane/) on a real agent: the hot route (KServe infer with a
 * Content-Length body) is served by the lane, everything else by node:http behind it, on the
 * same connections. Raw bytes on the socket check the parser's contract (any split of a request
 * across reads, pipelining in order, 100-continue, chunked, HTTP/1.0, keep-alive) and its
 * refusals (oversize heads and bodies, garbage, slow clients), each with its code; real curl
 * and the Python client check that ordinary clients work through both lanes.
 */
const run = promisify(execFile);
let h: Harness;
const MAX_BODY = 256 * 1024;
const CLS = '/v2/models/acme%2Fclassifier';

beforeAll(async () => {
  h = await startAgent({
    kinds: ['classifier'],
    limits: {
      maxBodyBytes: MAX_BODY,
      requestTimeoutMs: 1_500,
      headersTimeoutMs: 800,
      timeoutCheckMs: 100,
      keepAliveTimeoutMs: 600,
    },
  });
});
afterAll(async () => h?.close());

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Every answer in `bytes`, in order (Content-Length framed, as both lanes answer here). */
function answers(bytes: Buffer): Answer[] {
  const out: Answer[] = [];
  let at = 0;
  while (at < bytes.length) {
    const end = bytes.indexOf('\r\n\r\n', at);
    if (end === -1) break;
    const [line, ...lines] = bytes.subarray(at, end).toString('latin1').split('\r\n');
    const headers: Record<string, string> = {};
    for (const l of lines) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
    const status = Number(line!.split(' ')[1]);
    const len = status === 100 ? 0 : Number(headers['content-length'] ?? 0);
    out.push({ status, headers, body: bytes.subarray(end + 4, end + 4 + len) });
    at = end + 4 + len;
  }
  return out;
}

/**
 * Writes `parts` on one connection (a number is a pause in ms) and collects what comes back
 * until the agent closes, or until `until` answers arrived (then this side closes).
 */
function exchange(
  parts: (string | Buffer | number)[],
  until?: number,
): Promise<{ answers: Answer[]; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const s = connect(h.socket);
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      s.destroy();
      resolve({ answers: answers(Buffer.concat(chunks)), closed });
    };
    s.on('data', (c) => {
      chunks.push(c);
      if (until !== undefined && answers(Buffer.concat(chunks)).filter((a) => a.status !== 100).length >= until)
        finish(false);
    });
    s.on('error', (e: NodeJS.ErrnoException) =>
      e.code === 'EPIPE' || e.code === 'ECONNRESET' ? undefined : reject(e),
    );
    s.on('close', () => finish(true));
    s.on('connect', async () => {
      for (const p of parts) {
        if (typeof p === 'number') await new Promise((r) => setTimeout(r, p));
        else if (!s.destroyed) s.write(p);
      }
    });
  });
}

function binaryInfer(extra = '', path = `${CLS}/infer`): Buffer {
  const fx = h.fixtures.classifier!;
  const data = randomInput(3 * fx.size[0] * fx.size[1], 3);
  const tensor = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const header = {
    inputs: [
      {
        name: fx.inputName,
        shape: [1, 3, fx.size[1], fx.size[0]],
        datatype: 'FP32',
        parameters: { binary_data_size: tensor.length },
      },
    ],
    parameters: { binary_data_output: true },
  };
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const body = Buffer.concat([Buffer.from(json), tensor]);
  return Buffer.concat([
    Buffer.from(
      `POST ${path} HTTP/1.1\r\nHost: agent\r\nContent-Type: application/octet-stream\r\n` +
        `Inference-Header-Content-Length: ${json.length}\r\nContent-Length: ${body.length}\r\n${extra}\r\n`,
    ),
    body,
  ]);
}

const get = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: agent\r\n${extra}\r\n`;

let reference: Answer;

describe('the fast lane', () => {
  it('answers a binary infer cut at any byte boundaries exactly as the unsplit request', async () => {
    const req = binaryInfer();
    [reference] = (await exchange([req], 1)).answers as [Answer];
    expect(reference.status).toBe(200);
    expect(reference.headers['content-type']).toBe('application/octet-stream');
    // The same numbers the client (and so the in-process comparison in api-socket.test.ts) gets.
    const fx = h.fixtures.classifier!;
    const viaClient = await h.client.infer(
      'acme/classifier',
      {
        [fx.inputName]: {
          dtype: 'float32',
          shape: [1, 3, fx.size[1], fx.size[0]],
          data: randomInput(3 * fx.size[0] * fx.size[1], 3),
        },
      },
      { binary: true },
    );
    const hl = Number(reference.headers['inference-header-content-length']);
    const out = viaClient.outputs[fx.outputName]!.data as Float32Array;
    expect(Buffer.compare(reference.body.subarray(hl), Buffer.from(out.buffer, out.byteOffset, out.byteLength))).toBe(
      0,
    );

    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat({ max: req.length }), { minLength: 1, maxLength: 6 }), async (cuts) => {
        const at = [...new Set(cuts)].sort((a, b) => a - b);
        const parts: (Buffer | number)[] = [];
        let from = 0;
        for (const c of [...at, req.length]) {
          if (c <= from) continue;
          parts.push(req.subarray(from, c), 2);
          from = c;
        }
        const { answers: got } = await exchange(parts, 1);
        expect(got).toHaveLength(1);
        expect(got[0]!.status).toBe(200);
        expect(Buffer.compare(got[0]!.body, reference.body)).toBe(0);
      }),
      { numRuns: 25 },
    );
  });

  it('answers pipelined requests of both lanes in order on one connection', async () => {
    const json = JSON.stringify({ inputs: [{ name: 'nope', shape: [1], datatype: 'FP32', data: [1] }] });
    const { answers: got, closed } = await exchange([
      Buffer.concat([
        Buffer.from(get('/v2/health/live')),
        binaryInfer(),
        Buffer.from(get('/v2/models')),
        // A hot request refused before its body is read: the body is skipped, the connection kept.
        Buffer.from(`POST /v2/models/acme%2Fnope/infer HTTP/1.1\r\nContent-Length: ${json.length}\r\n\r\n${json}`),
        Buffer.from(`POST ${CLS}/infer HTTP/1.1\r\nContent-Length: ${json.length}\r\n\r\n${json}`),
        Buffer.from(get('/v2/health/ready', 'Connection: close\r\n')),
        Buffer.from(get('/v2/health/live')),
      ]),
    ]);
    expect(got.map((a) => a.status)).toEqual([200, 200, 200, 404, 400, 200]);
    expect(JSON.parse(got[0]!.body.toString())).toEqual({ live: true });
    expect(Buffer.compare(got[1]!.body, reference.body)).toBe(0);
    expect(JSON.parse(got[2]!.body.toString()).models[0].id).toBe('acme/classifier');
    expect(JSON.parse(got[3]!.body.toString()).code).toBe('API_MODEL_NOT_FOUND');
    expect(JSON.parse(got[4]!.body.toString()).code).toBe('API_UNKNOWN_INPUT');
    expect(got[5]!.headers.connection).toBe('close');
    // Nothing after the request that asked to close.
    expect(closed).toBe(true);
  });

  it('answers pipelined infers that arrive while one is served, more than the read buffer holds, in order', async () => {
    // The lane keeps reading while a request is served and pauses once bytes arrive; those bytes
    // and the rest (here well past its 64 KiB read buffer) must all be parsed after the answer.
    const many = Array.from({ length: 8 }, () => binaryInfer());
    expect(many.reduce((n, b) => n + b.length, 0)).toBeGreaterThan(64 * 1024);
    const { answers: got } = await exchange([Buffer.concat([...many, Buffer.from(get('/v2/health/live'))])], 9);
    expect(got.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 200]);
    for (const a of got.slice(0, 8)) expect(Buffer.compare(a.body, reference.body)).toBe(0);
    expect(JSON.parse(got[8]!.body.toString())).toEqual({ live: true });
  });

  it('sends 100 Continue before reading an infer body, and node:http does for other routes', async () => {
    const req = binaryInfer('Expect: 100-continue\r\n');
    const split = req.indexOf('\r\n\r\n') + 4;
    const hot = await exchange([req.subarray(0, split), 150, req.subarray(split)], 1);
    expect(hot.answers.map((a) => a.status)).toEqual([100, 200]);
    expect(Buffer.compare(hot.answers[1]!.body, reference.body)).toBe(0);
    const png = await encodePng(twoBlocksImage());
    const head = `POST /v1/models/acme/classifier/predict HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: ${png.length}\r\n\r\n`;
    const pass = await exchange([head, 150, png], 1);
    expect(pass.answers.map((a) => a.status)).toEqual([100, 200]);
    expect(JSON.parse(pass.answers[1]!.body.toString()).model).toBe('acme/classifier');
  });

  it('hands a chunked infer to node:http, which gives the same answer', async () => {
    const req = binaryInfer();
    const split = req.indexOf('\r\n\r\n');
    const head = req
      .subarray(0, split)
      .toString()
      .replace(/\r\nContent-Length: \d+/, '\r\nTransfer-Encoding: chunked');
    const body = req.subarray(split + 4);
    const mid = 1000;
    const chunked = Buffer.concat([
      Buffer.from(`${head}\r\n\r\n${mid.toString(16)}\r\n`),
      body.subarray(0, mid),
      Buffer.from(`\r\n${(body.length - mid).toString(16)};ext=1\r\n`),
      body.subarray(mid),
      Buffer.from('\r\n0\r\n\r\n'),
    ]);
    const { answers: got } = await exchange([chunked, Buffer.from(get('/v2/health/live'))], 2);
    expect(got.map((a) => a.status)).toEqual([200, 200]);
    expect(Buffer.compare(got[0]!.body, reference.body)).toBe(0);
  });

  it('answers HTTP/1.0 and closes, and closes idle keep-alive connections', async () => {
    const req = binaryInfer().toString('latin1').replace('HTTP/1.1', 'HTTP/1.0');
    const old = await exchange([Buffer.from(req, 'latin1')]);
    expect(old.answers.map((a) => a.status)).toEqual([200]);
    expect(old.answers[0]!.headers.connection).toBe('close');
    expect(old.closed).toBe(true);
    // The same through node:http (a handed request): it answers, ends, and the lane closes.
    const oldPass = await exchange(['GET /v2/health/live HTTP/1.0\r\n\r\n']);
    expect(oldPass.answers.map((a) => a.status)).toEqual([200]);
    expect(oldPass.closed).toBe(true);
    const started = Date.now();
    const idle = await exchange([get('/v2/health/live')]);
    expect(idle.answers.map((a) => a.status)).toEqual([200]);
    expect(idle.closed).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(500);
  });

  it.each([
    ['garbage', ['GARBAGE\r\n\r\n', get('/v2/health/live')], 400, 'API_BAD_HEADER'],
    [
      'a request smuggling attempt',
      [`POST ${CLS}/infer HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\n`],
      400,
      'API_BAD_HEADER',
    ],
    ['a head over 16 KiB', [`GET /v2 HTTP/1.1\r\nX-Big: ${'a'.repeat(17_000)}`], 431, 'API_HEADERS_TOO_LARGE'],
    [
      'an infer body over the limit',
      [
        () =>
          binaryInfer()
            .subarray(0, 300)
            .toString('latin1')
            .replace(/\r\nContent-Length: \d+/, `\r\nContent-Length: ${MAX_BODY + 1}`),
      ],
      413,
      'API_BODY_TOO_LARGE',
    ],
    ['a head that stops', ['GET /v2 HTTP/1.1\r\nHost: x\r\n'], 408, 'API_REQUEST_TIMEOUT'],
    ['an infer body that stops', [() => binaryInfer().subarray(0, 500)], 408, 'API_REQUEST_TIMEOUT'],
    [
      'a bad chunk handed to node:http',
      ['POST /v2/repository/index HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'],
      400,
      'API_BAD_HEADER',
    ],
  ])('refuses %s with its code and closes the connection', async (_what, parts, status, code) => {
    const bytes = (parts as (string | (() => string | Buffer))[]).map((p) => (typeof p === 'function' ? p() : p));
    const { answers: got, closed } = await exchange(bytes);
    expect(got.map((a) => a.status)).toEqual([status]);
    expect(JSON.parse(got[0]!.body.toString()).code).toBe(code);
    expect(closed).toBe(true);
  });

  it('counts the lane requests and refusals in the metrics, and holds no slot afterwards', async () => {
    const text = await h.client.metrics();
    expect(text).toMatch(/outpost_api_requests_total\{route="infer",status="200"\} [1-9]/);
    expect(text).toMatch(/outpost_api_rejected_total\{code="API_HEADERS_TOO_LARGE"\} [1-9]/);
    const status = (await h.client.status()) as { api: { inFlight: unknown[] } };
    expect(status.api.inFlight).toEqual([]);
  });
});

const noCurl = missingCommand('curl');
describe.skipIf(skipForPackage(noCurl))('curl through both lanes', () => {
  it('infers (binary, with Expect: 100-continue), predicts, reads health and metrics', async () => {
    const req = binaryInfer();
    const split = req.indexOf('\r\n\r\n') + 4;
    const hl = /Inference-Header-Content-Length: (\d+)/.exec(req.toString('latin1'))![1]!;
    const file = join(h.dir, 'infer.bin');
    await writeFile(file, req.subarray(split));
    const curl = (...args: string[]) =>
      run('curl', ['-sS', '--unix-socket', h.socket, ...args], { encoding: 'buffer', maxBuffer: 1 << 24 });
    const out = join(h.dir, 'answer.bin');
    const { stdout: code } = await curl(
      ...['-o', out, '-w', '%{http_code}', '--data-binary', `@${file}`],
      ...['-H', 'Content-Type: application/octet-stream', '-H', `Inference-Header-Content-Length: ${hl}`],
      ...['-H', 'Expect: 100-continue', `http://agent${CLS}/infer`],
    );
    expect(code.toString()).toBe('200');
    const { readFile } = await import('node:fs/promises');
    expect(Buffer.compare(await readFile(out), reference.body)).toBe(0);
    // Two requests on one curl connection: node:http's route, then the lane's.
    const { stdout: both } = await curl(
      `http://agent/v2/health/ready`,
      '--next',
      ...['--unix-socket', h.socket, '--data-binary', `@${file}`, '-H', `Inference-Header-Content-Length: ${hl}`],
      ...['-H', 'Content-Type: application/octet-stream', '-o', '/dev/null', '-w', '%{http_code} %{num_connects}'],
      `http://agent${CLS}/infer`,
    );
    expect(both.toString()).toBe('{"ready":true}200 0');
    const png = join(h.dir, 'img.png');
    await writeFile(png, await encodePng(twoBlocksImage()));
    const { stdout: predicted } = await curl(
      ...['--data-binary', `@${png}`, '-H', 'Content-Type: image/png'],
      'http://agent/v1/models/acme/classifier/predict',
    );
    expect(JSON.parse(predicted.toString()).model).toBe('acme/classifier');
    const { stdout: metrics } = await curl('http://agent/metrics');
    expect(metrics.toString()).toMatch(/outpost_api_requests_total\{route="infer",status="200"\}/);
  });
});

const noPython = missingCommand(PYTHON);
describe.skipIf(skipForPackage(noPython))('the Python client through both lanes', () => {
  it('ready, models and infer (plain lists) on one keep-alive connection', async () => {
    const fx = h.fixtures.classifier!;
    const n = 3 * fx.size[0] * fx.size[1];
    const script = [
      'import json, sys',
      `sys.path.insert(0, ${JSON.stringify(join(process.cwd(), 'agent/client/python'))})`,
      'from outpost_client import Client',
      'c = Client(sys.argv[1])',
      'print(json.dumps(c.ready()))',
      'print(json.dumps([m["id"] for m in c.models()]))',
      `out = c.infer("acme/classifier", {${JSON.stringify(fx.inputName)}: ("FP32", [1, 3, ${fx.size[1]}, ${fx.size[0]}], json.loads(sys.argv[2]))})`,
      `v = out[${JSON.stringify(fx.outputName)}]`,
      'print(json.dumps(v.flatten().tolist() if hasattr(v, "flatten") else v["data"]))',
      'print(json.dumps(c.ready()))',
    ].join('\n');
    const input = Array.from(randomInput(n, 3));
    const { stdout } = await run(PYTHON, ['-c', script, h.socket, JSON.stringify(input)], { maxBuffer: 1 << 24 });
    const lines = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines[0]).toBe(true);
    expect(lines[1]).toEqual(['acme/classifier']);
    const hl = Number(reference.headers['inference-header-content-length']);
    const want = new Float32Array(
      reference.body.buffer.slice(reference.body.byteOffset + hl, reference.body.byteOffset + reference.body.length),
    );
    expect(lines[2]).toEqual(Array.from(want));
    expect(lines[3]).toBe(true);
  });
});
