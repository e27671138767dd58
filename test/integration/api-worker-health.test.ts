import { afterEach, describe, expect, it } from 'vitest';
import { exitOnNextRun, liveOnnxWorkers } from '../../agent/runtime/backends/onnx-workers.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { parseReported } from '../../protocol/reported-state.js';
import { raw, randomInput, startAgent, type Harness } from './api-harness.js';

/**
 * A model whose ONNX worker thread keeps dying, seen through the real socket API: the request in
 * flight fails with RUNTIME_WORKER_EXITED, and with the restart bound reached (0 replacements
 * here) the model is unhealthy in /v2/health/ready, its own /ready and /v2/models, with the code
 * and what to do; loading the model again (what the repository extension's load does) serves it.
 */
let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const get = async (path: string) =>
  (await raw(h!.socket, [`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`]))!;
const input = { data: { dtype: 'float32' as const, shape: [1, 3, 32, 32], data: randomInput(3072) } };

describe('an ONNX model whose worker thread dies', () => {
  it('is reported unhealthy with RUNTIME_WORKER_UNHEALTHY once the restart bound is reached, and serves again after a reload', async () => {
    const before = new Set(liveOnnxWorkers());
    h = await startAgent({ kinds: ['classifier'], onnx: { workers: 1, workerMinMicros: 0, workerRestarts: 0 } });
    const [worker] = liveOnnxWorkers().filter((w) => !before.has(w));
    expect(worker).toBeDefined();
    expect((await get('/v2/health/ready')).json).toEqual({ ready: true });
    const ok = await h.client.infer('acme/classifier', input);

    exitOnNextRun(worker!);
    const err = await h.client.infer('acme/classifier', input).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutpostError);
    expect((err as OutpostError).code).toBe('RUNTIME_WORKER_EXITED');

    await expect.poll(async () => (await get('/v2/health/ready')).json?.unhealthy).toBeDefined();
    const health = await get('/v2/health/ready');
    expect(health.status).toBe(200);
    expect(health.json).toMatchObject({
      ready: true,
      unhealthy: [{ name: 'acme/classifier', version: 1, error: { code: 'RUNTIME_WORKER_UNHEALTHY' } }],
    });
    const message = (health.json!.unhealthy as { error: { message: string } }[])[0]!.error.message;
    expect(message).toMatch(/stopped 1 times within 60 s/);
    expect(message).toMatch(/POST \/v2\/repository\/models\/\{name\}\/load/);

    const ready = await get('/v2/models/acme%2Fclassifier/ready');
    expect(ready.status).toBe(503);
    expect(ready.json).toMatchObject({
      code: 'API_MODEL_NOT_READY',
      details: { state: 'unhealthy', error: { code: 'RUNTIME_WORKER_UNHEALTHY' } },
    });
    expect((await get('/v2/models')).json).toMatchObject({
      models: [{ id: 'acme/classifier', state: 'unhealthy', error: { code: 'RUNTIME_WORKER_UNHEALTHY' } }],
    });
    const refused = await h.client.infer('acme/classifier', input).catch((e: unknown) => e);
    expect((refused as OutpostError).code).toBe('API_MODEL_NOT_READY');

    // The reported state (what the daemon's reconciler sends, through the parser the cloud uses).
    const serving = h.runtime.reportedServing('acme/classifier');
    expect(serving).toMatchObject({ mode: 'unhealthy', reason: { code: 'RUNTIME_WORKER_UNHEALTHY' } });
    const report = parseReported({
      type: 'reported',
      device: 'dev-1',
      agentVersion: 'test',
      appliedRevision: null,
      time: new Date().toISOString(),
      capabilities: { backends: [] },
      models: [
        {
          id: 'acme/classifier',
          version: 1,
          activeVersion: 1,
          state: 'active',
          serving,
        },
      ],
    });
    expect(report.models[0]!.serving).toEqual(serving);

    // Loading the same version again gives it a fresh worker: healthy, and the same answer.
    await h.runtime.activate('acme/classifier', 1, h.fixtures.classifier!.dir);
    expect((await get('/v2/health/ready')).json).toEqual({ ready: true });
    expect((await get('/v2/models/acme%2Fclassifier/ready')).status).toBe(200);
    expect(h.runtime.reportedServing('acme/classifier')).toBeUndefined();
    const again = await h.client.infer('acme/classifier', input);
    expect(again.outputs).toEqual(ok.outputs);
  });
});
