import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activeAt, startTestFleet, waitFor, type TestAgent, type TestFleet } from '../helpers/fleet.js';

/**
 * KServe v2 through the real daemon (cloud, CLI publish, deploy, agent): per-version serving of a
 * kept older version, the model repository extension, and the fields the v2 REST schema requires
 * on every route's answers (server metadata, health, model metadata and ready, inference, errors).
 */
let f: TestFleet;
let agent: TestAgent;
const M = encodeURIComponent('acme/colors');

interface Answer {
  status: number;
  json: any;
}
function call(method: string, path: string, body?: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const req = request(
      {
        socketPath: agent.socket,
        method,
        path,
        headers: data ? { 'Content-Type': 'application/json', 'Content-Length': data.length } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined });
        });
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

/** KServe: `$tensor_metadata = {name: string, datatype: string, shape: [int]}`. */
function expectTensorMetadata(t: any): void {
  expect(typeof t.name).toBe('string');
  expect(typeof t.datatype).toBe('string');
  expect(Array.isArray(t.shape) && t.shape.every(Number.isInteger)).toBe(true);
}
/** KServe: errors are `{"error": string}`. */
function expectError(a: Answer, status: number): void {
  expect(a.status).toBe(status);
  expect(typeof a.json.error).toBe('string');
  expect(a.json.error.length).toBeGreaterThan(0);
}

const zeros = { name: 'data', shape: [1, 3, 32, 32], datatype: 'FP32', data: new Array(3 * 32 * 32).fill(0.5) };

beforeAll(async () => {
  f = await startTestFleet();
  await f.publish('acme/colors');
  await f.publish('acme/colors', 'classifier', { labels: ['rouge', 'vert', 'bleu'] });
  await f.provision('cam-1');
  agent = await f.startAgent('cam-1');
  await f.fleet.deploy({ model: 'acme/colors@1' }, { kind: 'device', value: 'cam-1' });
  await waitFor('v1 active', () => activeAt(agent, 'acme/colors', 1), 30_000);
  await f.fleet.deploy({ model: 'acme/colors@2' }, { kind: 'device', value: 'cam-1' });
  await waitFor('v2 active', () => activeAt(agent, 'acme/colors', 2), 30_000);
}, 90_000);
afterAll(async () => {
  await f?.close();
});

describe('per-version serving', () => {
  it('infers on the kept version 1 next to the active version 2, loaded on demand', async () => {
    let index = await call('POST', '/v2/repository/index', {});
    expect(index.json).toEqual([
      { name: 'acme/colors', version: '1', state: 'UNAVAILABLE', reason: expect.stringContaining('kept on disk') },
      { name: 'acme/colors', version: '2', state: 'READY', reason: '' },
    ]);
    const v1 = await call('POST', `/v2/models/${M}/versions/1/infer`, { inputs: [zeros] });
    expect(v1.status).toBe(200);
    expect(v1.json).toMatchObject({ model_name: 'acme/colors', model_version: '1' });
    const v2 = await call('POST', `/v2/models/${M}/infer`, { inputs: [zeros] });
    expect(v2.json.model_version).toBe('2');
    // Same weights, so the same scores: the versions differ by their labels.
    expect(v1.json.outputs[0].data).toEqual(v2.json.outputs[0].data);
    const meta = await call('GET', `/v2/models/${M}/versions/1`);
    expect(meta.json.versions).toEqual(['1', '2']);
    expect(meta.json.outpost.version).toBe(1);
    index = await call('POST', '/v2/repository/index', { ready: true });
    expect(index.json.map((r: any) => r.version)).toEqual(['1', '2']);
    const red = await agent.client.predict('acme/colors', await pngRed(), { version: 1 });
    expect((red.predictions as any[])[0].label).toBe('red');
    expectError(await call('POST', `/v2/models/${M}/versions/7/infer`, { inputs: [zeros] }), 404);
  });
});

describe('model repository extension', () => {
  it('unload stops serving, load serves the current version again', async () => {
    expect((await call('POST', `/v2/repository/models/${M}/unload`)).status).toBe(200);
    expectError(await call('POST', `/v2/models/${M}/infer`, { inputs: [zeros] }), 404);
    const index = await call('POST', '/v2/repository/index');
    expect(index.json.find((r: any) => r.version === '2')).toEqual({
      name: 'acme/colors',
      version: '2',
      state: 'UNAVAILABLE',
      reason: 'unloaded',
    });
    // The alias (name without owner) resolves as on the other routes.
    const load = await call('POST', '/v2/repository/models/colors/load', {});
    expect(load).toEqual({ status: 200, json: {} });
    expect((await call('POST', `/v2/models/${M}/infer`, { inputs: [zeros] })).json.model_version).toBe('2');
    expectError(await call('POST', '/v2/repository/models/acme%2Fnope/load'), 404);
    expectError(await call('POST', '/v2/repository/index', 'not json'), 400);
  });
});

describe('KServe v2 REST conformance, route by route', () => {
  it('GET /v2: name, version, extensions (strings)', async () => {
    const a = await call('GET', '/v2');
    expect(a.status).toBe(200);
    expect(typeof a.json.name).toBe('string');
    expect(typeof a.json.version).toBe('string');
    expect(a.json.extensions.every((e: unknown) => typeof e === 'string')).toBe(true);
    expect(a.json.extensions).toContain('model_repository');
  });

  it('health: live and ready answer 200', async () => {
    expect((await call('GET', '/v2/health/live')).status).toBe(200);
    expect((await call('GET', '/v2/health/ready')).status).toBe(200);
  });

  it('model metadata: name, versions, platform, inputs and outputs as tensor metadata', async () => {
    for (const path of [`/v2/models/${M}`, `/v2/models/${M}/versions/2`]) {
      const a = await call('GET', path);
      expect(a.status).toBe(200);
      expect(a.json.name).toBe('acme/colors');
      expect(a.json.versions.every((v: unknown) => typeof v === 'string')).toBe(true);
      expect(typeof a.json.platform).toBe('string');
      expect(a.json.inputs.length).toBeGreaterThan(0);
      expect(a.json.outputs.length).toBeGreaterThan(0);
      [...a.json.inputs, ...a.json.outputs].forEach(expectTensorMetadata);
    }
  });

  it('model ready: 200 for a served version', async () => {
    expect((await call('GET', `/v2/models/${M}/ready`)).status).toBe(200);
    expect((await call('GET', `/v2/models/${M}/versions/2/ready`)).status).toBe(200);
  });

  it('inference response: model_name, model_version, id echoed, outputs with name, shape, datatype, data', async () => {
    const a = await call('POST', `/v2/models/${M}/infer`, { id: 'req-1', inputs: [zeros] });
    expect(a.status).toBe(200);
    expect(a.json.model_name).toBe('acme/colors');
    expect(typeof a.json.model_version).toBe('string');
    expect(a.json.id).toBe('req-1');
    for (const o of a.json.outputs) {
      expectTensorMetadata(o);
      expect(Array.isArray(o.data)).toBe(true);
      expect(o.data.length).toBe(o.shape.reduce((x: number, y: number) => x * y, 1));
    }
  });

  it('errors carry a string "error" on every route family', async () => {
    expectError(await call('GET', '/v2/models/acme%2Fnope'), 404);
    expectError(await call('GET', '/v2/models/acme%2Fnope/ready'), 404);
    expectError(await call('GET', `/v2/models/${M}/versions/abc`), 404);
    expectError(await call('POST', `/v2/models/${M}/infer`, '{"inputs": ['), 400);
    expectError(await call('POST', `/v2/models/${M}/infer`, { inputs: [{ ...zeros, shape: [1, 3] }] }), 400);
    expectError(await call('POST', '/v2/nothing/here'), 404);
    expectError(await call('GET', `/v2/models/${M}/infer`), 405);
  });
});

async function pngRed(): Promise<Buffer> {
  const { encodePng, rawImage } = await import('../fixtures/images.js');
  return encodePng(rawImage(32, 32, () => [250, 10, 10]));
}
