import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterEach, describe, expect, it } from 'vitest';
import { servingRuntime } from '../../agent/api/runtime-adapter.js';
import { createApiServer, type ApiServer } from '../../agent/api/server.js';
import { AgentClient, SharedMemoryObject } from '../../agent/client/index.js';
import { Runtime } from '../../agent/runtime/runtime.js';
import { silentLogger } from '../../protocol/log.js';
import { CONV_SIZE, writeConvNetFolder } from '../../bench/_convnet.js';
import { batchTotals } from '../../bench/_throughput.js';
import { useTempDir } from '../helpers/temp-dir.js';
import { randomInput } from './api-harness.js';

/**
 * Shared memory in and out on a dynamically batched model: 16 clients at once, each with its own
 * object holding its input and, after it, its output. This is what an app with many camera
 * streams runs, and what `npm run bench -- socket-16-clients` measures ("shared memory, batching").
 * Every region must receive exactly the output an in-process run of the same file gives for its
 * own input, whatever rows the agent put together into a run. The test does not assert that
 * batches formed, because that depends on when the requests arrive. It only asserts that every row
 * was run.
 */
const tmp = useTempDir('outpost-shm-batch-');
let rt: Runtime | undefined;
let server: ApiServer | undefined;
const clients: AgentClient[] = [];
const objects: SharedMemoryObject[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const o of objects.splice(0)) o.destroy();
  await server?.close(500);
  await rt?.close();
  rt = server = undefined;
});

describe('shared memory on a batching model', () => {
  it('16 clients at once: each region gets the in-process output of its own input', async () => {
    rt = new Runtime({ log: silentLogger });
    const dir = join(tmp.dir, 'batched');
    await writeConvNetFolder(dir, 'acme/batched', {
      batch: 'N',
      dynamic_batching: { max_batch_size: 8, max_queue_delay_microseconds: 2000 },
    });
    await rt.activate('acme/batched', 1, dir);
    server = createApiServer({ runtime: servingRuntime(rt), log: silentLogger });
    const socket = join(tmp.dir, 'agent.sock');
    await server.listen(socket);
    const admin = new AgentClient({ socket });
    clients.push(admin);
    const out = (await admin.model('acme/batched')).outputs[0]!;
    const outElements = out.shape.reduce((a, b) => a * Math.max(1, b), 1);
    const shape = [1, 3, CONV_SIZE, CONV_SIZE];
    const inBytes = 4 * 3 * CONV_SIZE * CONV_SIZE;
    const outBytes = 4 * outElements;

    const session = await ort.InferenceSession.create(join(dir, 'model.onnx'));
    const want: Float32Array[] = [];
    const requests = [];
    for (let i = 0; i < 16; i++) {
      const data = randomInput(3 * CONV_SIZE * CONV_SIZE, 100 + i);
      const r = await session.run({ data: new ort.Tensor('float32', data, shape) });
      want.push(r[out.name]!.data as Float32Array);
      const o = SharedMemoryObject.create(`/outpost-shmb-${process.pid}-${i}`, inBytes + outBytes);
      objects.push(o);
      o.write(0, data);
      // The output area starts as a pattern no model would write, so a row never written shows.
      o.write(inBytes, new Float32Array(outElements).fill(-12345));
      await admin.registerSharedMemory(`r${i}`, o.key, inBytes + outBytes);
      const c = new AgentClient({ socket });
      clients.push(c);
      requests.push({ c, region: `r${i}` });
    }
    await session.release();
    const before = await batchTotals(admin, 'acme/batched');
    const answers = await Promise.all(
      requests.map(({ c, region }) =>
        c.infer(
          'acme/batched',
          { data: { dtype: 'float32', shape, shm: { region, offset: 0, byteSize: inBytes } } },
          { outputs: [{ name: out.name, shm: { region, offset: inBytes, byteSize: outBytes } }] },
        ),
      ),
    );
    for (const [i, a] of answers.entries()) {
      const got = objects[i]!.readTensor(a.shmOutputs[out.name]!).data as Float32Array;
      expect(Array.from(got), `region r${i}`).toEqual(Array.from(want[i]!));
    }
    const after = await batchTotals(admin, 'acme/batched');
    expect(after.rows - before.rows).toBe(16);
    expect(after.runs - before.runs).toBeGreaterThanOrEqual(2); // at most 8 rows per run
    await admin.unregisterSharedMemory();
  });
});
