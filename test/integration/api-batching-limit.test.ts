import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { servingRuntime } from '../../agent/api/runtime-adapter.js';
import { createApiServer, type ApiServer } from '../../agent/api/server.js';
import { AgentClient } from '../../agent/client/index.js';
import { Runtime } from '../../agent/runtime/runtime.js';
import type { OutpostError } from '../../protocol/errors/index.js';
import { silentLogger } from '../../protocol/log.js';
import { CONV_SIZE, writeConvNetFolder } from '../../bench/_convnet.js';
import { useTempDir } from '../helpers/temp-dir.js';

/**
 * The socket's per-model concurrency limit for a batching model: room for two full batches
 * (2 x max_batch_size) even where api.maxConcurrentPerModel is lower, as with its default of 4,
 * which would keep a batch of 8 from ever filling; a model that does not batch keeps the
 * configured limit. Slots are held by requests whose body has not arrived (the slot is taken
 * before the body is read), so what is in flight is known without any timing.
 */
const tmp = useTempDir('outpost-batch-limit-');
let rt: Runtime | undefined;
let server: ApiServer | undefined;
let client: AgentClient | undefined;
const held: Socket[] = [];

afterEach(async () => {
  for (const s of held.splice(0)) s.destroy();
  client?.close();
  await server?.close(500);
  await rt?.close();
  rt = server = client = undefined;
});

const input = {
  data: { dtype: 'float32' as const, shape: [1, 3, CONV_SIZE, CONV_SIZE], data: new Float32Array(3 * CONV_SIZE ** 2) },
};

/** Opens a request to `id` whose body never comes: it holds one of the model's slots. */
function hold(socket: string, id: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = connect(socket, () => {
      s.write(
        `POST /v2/models/${encodeURIComponent(id)}/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n`,
        () => resolve(),
      );
    });
    s.on('error', reject);
    held.push(s);
  });
}

const inFlight = async (id: string) =>
  Number(
    new RegExp(`^outpost_model_inflight_requests\\{model="${id}"\\} (\\d+)$`, 'm').exec(await client!.metrics())?.[1] ??
      0,
  );

/** Holds `n` slots of `id`, then sends one more request: its refusal. */
async function saturate(socket: string, id: string, n: number): Promise<OutpostError> {
  for (let i = 0; i < n; i++) await hold(socket, id);
  await expect.poll(() => inFlight(id)).toBe(n);
  return (await client!.infer(id, input, { binary: true }).catch((e: unknown) => e)) as OutpostError;
}

async function start(): Promise<string> {
  rt = new Runtime({ log: silentLogger });
  await writeConvNetFolder(join(tmp.dir, 'batched'), 'acme/batched', {
    batch: 'N',
    dynamic_batching: { max_batch_size: 8, max_queue_delay_microseconds: 0 },
  });
  await rt.activate('acme/batched', 1, join(tmp.dir, 'batched'));
  await writeConvNetFolder(join(tmp.dir, 'single'), 'acme/single');
  await rt.activate('acme/single', 1, join(tmp.dir, 'single'));
  // The default limits: api.maxConcurrentPerModel 4.
  server = createApiServer({ runtime: servingRuntime(rt), log: silentLogger });
  const socket = join(tmp.dir, 'agent.sock');
  await server.listen(socket);
  client = new AgentClient({ socket });
  return socket;
}

describe('the concurrency limit of a batching model', () => {
  it('is 2 x max_batch_size above the default api.maxConcurrentPerModel; a model that does not batch keeps 4', async () => {
    const socket = await start();
    const over = await saturate(socket, 'acme/batched', 16);
    expect(over.code).toBe('API_SATURATED');
    expect(over.details).toMatchObject({ limit: 16 });
    expect(over.message).toMatch(/2 x its max_batch_size, above api.maxConcurrentPerModel 4/);
    const single = await saturate(socket, 'acme/single', 4);
    expect(single.code).toBe('API_SATURATED');
    expect(single.details).toMatchObject({ limit: 4 });

    // The held requests' clients go away: their slots come back and both models serve.
    for (const s of held.splice(0)) s.destroy();
    await expect.poll(async () => (await inFlight('acme/batched')) + (await inFlight('acme/single'))).toBe(0);
    expect((await client!.infer('acme/batched', input, { binary: true })).meta.model_name).toBe('acme/batched');
    expect((await client!.infer('acme/single', input, { binary: true })).meta.model_name).toBe('acme/single');
  });
});
