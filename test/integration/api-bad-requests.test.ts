import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePng, rectsImage } from '../fixtures/images.js';
import { raw, randomInput, startAgent, type Harness, type RawAnswer } from './api-harness.js';

/**
 * Bad requests, sent as raw bytes on the socket, each answered with its status and error code
 * while well-behaved clients keep running inference on the same agent; none of them may fail,
 * and the agent must still be healthy and hold no request slots afterwards.
 */
let h: Harness;
const MAX_BODY = 256 * 1024;

beforeAll(async () => {
  h = await startAgent({
    kinds: ['classifier', 'yolo'],
    limits: {
      maxBodyBytes: MAX_BODY,
      requestTimeoutMs: 1_500,
      headersTimeoutMs: 1_000,
      timeoutCheckMs: 200,
      maxConcurrentPerModel: 32,
    },
  });
});
afterAll(async () => h?.close());

const CLS = '/v2/models/acme%2Fclassifier';

function http(
  method: string,
  path: string,
  body: string | Buffer = '',
  headers: Record<string, string> = {},
): (string | Buffer)[] {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  const lines = [`${method} ${path} HTTP/1.1`, 'Host: localhost', 'Connection: close'];
  if (!('Content-Length' in headers) && !('Transfer-Encoding' in headers)) lines.push(`Content-Length: ${b.length}`);
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  return [Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n'), b])];
}

const goodInput = () => ({
  name: 'data',
  shape: [1, 3, 32, 32],
  datatype: 'FP32',
  data: Array.from(randomInput(3 * 32 * 32)),
});
const inferBody = (v: unknown) => JSON.stringify(v);

function binaryBody(
  inputs: { name: string; shape: number[]; datatype: string; size: number }[],
  bytes: number,
): { body: Buffer; hl: number } {
  const header = Buffer.from(
    JSON.stringify({
      inputs: inputs.map((i) => ({
        name: i.name,
        shape: i.shape,
        datatype: i.datatype,
        parameters: { binary_data_size: i.size },
      })),
    }),
  );
  return { body: Buffer.concat([header, Buffer.alloc(bytes)]), hl: header.length };
}

interface Case {
  what: string;
  parts: () => Promise<(string | Buffer)[]> | (string | Buffer)[];
  status: number;
  code: string;
  pauseMs?: number;
}

const full = binaryBody([{ name: 'data', shape: [1, 3, 32, 32], datatype: 'FP32', size: 12288 }], 12288);
const truncated = binaryBody([{ name: 'data', shape: [1, 3, 32, 32], datatype: 'FP32', size: 12288 }], 12000);
const extra = binaryBody([{ name: 'data', shape: [1, 3, 32, 32], datatype: 'FP32', size: 12288 }], 12300);

const CASES: Case[] = [
  { what: 'unknown route', parts: () => http('GET', '/v3/nothing'), status: 404, code: 'NOT_FOUND' },
  {
    what: 'unknown model metadata',
    parts: () => http('GET', '/v2/models/acme%2Fnope'),
    status: 404,
    code: 'API_MODEL_NOT_FOUND',
  },
  {
    what: 'unknown alias ready',
    parts: () => http('GET', '/v2/models/nope/ready'),
    status: 404,
    code: 'API_MODEL_NOT_FOUND',
  },
  {
    what: 'infer on an unknown model',
    parts: () => http('POST', '/v2/models/acme%2Fnope/infer', inferBody({ inputs: [goodInput()] })),
    status: 404,
    code: 'API_MODEL_NOT_FOUND',
  },
  {
    what: 'unknown version',
    parts: () => http('GET', `${CLS}/versions/7`),
    status: 404,
    code: 'API_VERSION_NOT_FOUND',
  },
  {
    what: 'non-numeric version',
    parts: () => http('POST', `${CLS}/versions/abc/infer`, inferBody({ inputs: [goodInput()] })),
    status: 404,
    code: 'API_VERSION_NOT_FOUND',
  },
  { what: 'GET on infer', parts: () => http('GET', `${CLS}/infer`), status: 405, code: 'API_METHOD_NOT_ALLOWED' },
  { what: 'POST on health', parts: () => http('POST', '/v2/health/live'), status: 405, code: 'API_METHOD_NOT_ALLOWED' },
  {
    what: 'bad %-escape in the path',
    parts: () => http('GET', '/v2/models/%E0%A4%A'),
    status: 400,
    code: 'BAD_REQUEST',
  },
  {
    what: 'body is not JSON',
    parts: () => http('POST', `${CLS}/infer`, '{"inputs": [', { 'Content-Type': 'application/json' }),
    status: 400,
    code: 'API_BAD_JSON',
  },
  { what: 'body is a JSON array', parts: () => http('POST', `${CLS}/infer`, '[]'), status: 400, code: 'API_BAD_JSON' },
  { what: 'no inputs', parts: () => http('POST', `${CLS}/infer`, '{}'), status: 400, code: 'API_BAD_INFER_REQUEST' },
  {
    what: 'wrong shape for the model',
    parts: () => http('POST', `${CLS}/infer`, inferBody({ inputs: [{ ...goodInput(), shape: [1, 3, 16, 64] }] })),
    status: 400,
    code: 'API_SHAPE_MISMATCH',
  },
  {
    what: 'data count differs from shape',
    parts: () => http('POST', `${CLS}/infer`, inferBody({ inputs: [{ ...goodInput(), data: [1, 2, 3] }] })),
    status: 400,
    code: 'API_SHAPE_MISMATCH',
  },
  {
    what: 'wrong dtype for the model',
    parts: () =>
      http(
        'POST',
        `${CLS}/infer`,
        inferBody({ inputs: [{ ...goodInput(), datatype: 'INT32', data: new Array(3072).fill(1) }] }),
      ),
    status: 400,
    code: 'API_DTYPE_MISMATCH',
  },
  {
    what: 'unknown datatype',
    parts: () => http('POST', `${CLS}/infer`, inferBody({ inputs: [{ ...goodInput(), datatype: 'FP8' }] })),
    status: 400,
    code: 'API_UNKNOWN_DATATYPE',
  },
  {
    what: 'overflowing number (1e400)',
    parts: () =>
      http('POST', `${CLS}/infer`, `{"inputs":[{"name":"data","shape":[1],"datatype":"FP32","data":[1e400]}]}`),
    status: 400,
    code: 'API_DTYPE_MISMATCH',
  },
  {
    what: 'unknown input name',
    parts: () => http('POST', `${CLS}/infer`, inferBody({ inputs: [{ ...goodInput(), name: 'image' }] })),
    status: 400,
    code: 'API_UNKNOWN_INPUT',
  },
  {
    what: 'unknown output requested',
    parts: () => http('POST', `${CLS}/infer`, inferBody({ inputs: [goodInput()], outputs: [{ name: 'logits' }] })),
    status: 400,
    code: 'API_UNKNOWN_INPUT',
  },
  {
    what: 'arrays nested too deep',
    parts: () =>
      http(
        'POST',
        `${CLS}/infer`,
        `{"inputs":[{"name":"data","shape":[1],"datatype":"FP32","data":${'['.repeat(50)}1${']'.repeat(50)}}]}`,
      ),
    status: 400,
    code: 'API_BAD_INFER_REQUEST',
  },
  {
    what: 'truncated binary data',
    parts: () =>
      http('POST', `${CLS}/infer`, truncated.body, {
        'Inference-Header-Content-Length': String(truncated.hl),
        'Content-Type': 'application/octet-stream',
      }),
    status: 400,
    code: 'API_BINARY_DATA',
  },
  {
    what: 'extra bytes after binary data',
    parts: () => http('POST', `${CLS}/infer`, extra.body, { 'Inference-Header-Content-Length': String(extra.hl) }),
    status: 400,
    code: 'API_BINARY_DATA',
  },
  {
    what: 'binary_data_size without the header',
    parts: () => http('POST', `${CLS}/infer`, full.body),
    status: 400,
    code: 'API_BAD_JSON',
  },
  {
    what: 'header length is not a number',
    parts: () => http('POST', `${CLS}/infer`, full.body, { 'Inference-Header-Content-Length': 'twelve' }),
    status: 400,
    code: 'API_BAD_HEADER',
  },
  {
    what: 'header length past the body',
    parts: () =>
      http('POST', `${CLS}/infer`, full.body, { 'Inference-Header-Content-Length': String(full.body.length + 10) }),
    status: 400,
    code: 'API_BAD_HEADER',
  },
  {
    what: 'text/plain body on infer',
    parts: () => http('POST', `${CLS}/infer`, 'hello', { 'Content-Type': 'text/plain' }),
    status: 415,
    code: 'API_UNSUPPORTED_MEDIA_TYPE',
  },
  {
    what: 'oversize body (Content-Length)',
    parts: () => http('POST', `${CLS}/infer`, Buffer.alloc(MAX_BODY + 1, 32)),
    status: 413,
    code: 'API_BODY_TOO_LARGE',
  },
  {
    what: 'oversize chunked body',
    parts: () => {
      const chunk = Buffer.alloc(64 * 1024, 32);
      const framed = Buffer.concat(
        [...Array(5)].flatMap(() => [Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]),
      );
      return http('POST', `${CLS}/infer`, Buffer.concat([framed, Buffer.from('0\r\n\r\n')]), {
        'Transfer-Encoding': 'chunked',
      });
    },
    status: 413,
    code: 'API_BODY_TOO_LARGE',
  },
  {
    what: 'predict with non-image bytes',
    parts: () => http('POST', '/v1/models/acme/yolo/predict', 'GIF89a....'),
    status: 415,
    code: 'API_NOT_AN_IMAGE',
  },
  {
    what: 'predict with an empty body',
    parts: () => http('POST', '/v1/models/acme/yolo/predict', ''),
    status: 415,
    code: 'API_NOT_AN_IMAGE',
  },
  {
    what: 'predict with a truncated PNG',
    parts: async () =>
      http(
        'POST',
        '/v1/models/acme/yolo/predict',
        (await encodePng(rectsImage(64, 48, [0, 0, 0], []))).subarray(0, 60),
        { 'Content-Type': 'image/png' },
      ),
    status: 400,
    code: 'RUNTIME_IMAGE_INVALID',
  },
  {
    what: 'predict with a JSON content type',
    parts: () => http('POST', '/v1/models/acme/yolo/predict', '{}', { 'Content-Type': 'application/json' }),
    status: 415,
    code: 'API_UNSUPPORTED_MEDIA_TYPE',
  },
  {
    what: 'predict with confidence=2',
    parts: () => http('POST', '/v1/models/acme/yolo/predict?confidence=2', ''),
    status: 400,
    code: 'BAD_REQUEST',
  },
  {
    what: 'predict with top_k=0.5',
    parts: () => http('POST', '/v1/models/acme/classifier/predict?top_k=0.5', ''),
    status: 400,
    code: 'BAD_REQUEST',
  },
  {
    what: 'predict on an unknown model',
    parts: () => http('POST', '/v1/models/acme/nope/predict', 'x'),
    status: 404,
    code: 'API_MODEL_NOT_FOUND',
  },
  {
    what: 'predict on an unknown version',
    parts: () => http('POST', '/v1/models/acme/yolo/predict?version=9', 'x'),
    status: 404,
    code: 'API_VERSION_NOT_FOUND',
  },
  { what: 'garbage request line', parts: () => ['GARBAGE\r\n\r\n'], status: 400, code: 'API_BAD_HEADER' },
  {
    what: 'header name with a space',
    parts: () => ['GET /v2 HTTP/1.1\r\nBad Header: x\r\n\r\n'],
    status: 400,
    code: 'API_BAD_HEADER',
  },
  {
    what: 'Content-Length not a number',
    parts: () => ['POST /v2 HTTP/1.1\r\nContent-Length: abc\r\n\r\n'],
    status: 400,
    code: 'API_BAD_HEADER',
  },
  {
    what: 'Content-Length and Transfer-Encoding both',
    parts: () => [`POST ${CLS}/infer HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
    status: 400,
    code: 'API_BAD_HEADER',
  },
  {
    what: 'headers larger than 16 KiB',
    parts: () => [`GET /v2 HTTP/1.1\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`],
    status: 431,
    code: 'API_HEADERS_TOO_LARGE',
  },
  {
    what: 'slow headers (never finished)',
    parts: () => ['GET /v2 HTTP/1.1\r\nHost: x\r\n'],
    status: 408,
    code: 'API_REQUEST_TIMEOUT',
  },
  {
    what: 'slow body (stops half way)',
    parts: () => [`POST ${CLS}/infer HTTP/1.1\r\nContent-Length: 5000\r\n\r\n{"inputs": [`],
    status: 408,
    code: 'API_REQUEST_TIMEOUT',
  },
];

describe('bad requests while good clients keep succeeding', () => {
  it(`answers ${CASES.length} kinds of bad request with their codes, without failing a good one`, async () => {
    let stop = false;
    let good = 0;
    const failures: unknown[] = [];
    const png = await encodePng(rectsImage(64, 48, [30, 30, 30], [{ box: [4, 4, 30, 30], color: [0, 255, 0] }]));
    const worker = async (i: number) => {
      while (!stop) {
        try {
          if (i % 2 === 0)
            await h.client.infer(
              'acme/classifier',
              { data: { dtype: 'float32', shape: [1, 3, 32, 32], data: randomInput(3072, i) } },
              { binary: i % 4 === 0 },
            );
          else await h.client.predict('acme/yolo', png);
          good++;
        } catch (err) {
          failures.push(err);
        }
      }
    };
    const workers = [0, 1, 2, 3].map(worker);

    const answers = await Promise.all(
      CASES.map(async (c) => ({ c, a: await raw(h.socket, await c.parts(), { pauseMs: c.pauseMs }) })),
    );
    // An abandoned client: half a body, then gone. Nobody to answer; the agent must not care.
    await raw(h.socket, [`POST ${CLS}/infer HTTP/1.1\r\nContent-Length: 9000\r\n\r\n{"inputs":`], { hangUp: true });
    await raw(h.socket, ['POST /v1/models/acme/yolo/predict HTTP/1.1\r\nContent-Length: 9000\r\n\r\n\x89PNG'], {
      hangUp: true,
    });
    stop = true;
    await Promise.all(workers);

    const wrong = answers
      .filter(({ c, a }) => a?.status !== c.status || a?.json?.code !== c.code)
      .map(({ c, a }) => ({
        case: c.what,
        want: `${c.status} ${c.code}`,
        got: a ? `${a.status} ${String(a.json?.code)} ${a.body.toString().slice(0, 160)}` : 'no answer',
      }));
    expect(wrong).toEqual([]);
    for (const { a } of answers) {
      const ans = a as RawAnswer;
      // KServe's `error` field carries the same message as Outpost's `message`.
      expect(ans.json?.error).toBe(ans.json?.message);
    }
    expect(failures).toEqual([]);
    expect(good).toBeGreaterThan(10);

    expect(await h.client.health()).toEqual({ live: true, ready: true });
    const status = (await h.client.status()) as { api: { inFlight: unknown[] } };
    expect(status.api.inFlight).toEqual([]);
    const metrics = await h.client.metrics();
    expect(metrics).toMatch(/outpost_api_rejected_total\{code="API_SHAPE_MISMATCH"\} [1-9]/);
  });
});
