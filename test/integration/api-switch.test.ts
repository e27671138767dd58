import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentEventMessage } from '../../agent/client/index.js';
import { writeModelFolder } from '../fixtures/model-folder.js';
import { encodePng, rectsImage } from '../fixtures/images.js';
import { randomInput, startAgent, type Harness } from './api-harness.js';

/**
 * Version switches under load: 16 clients run infer and predict through the socket without a
 * pause while versions 2 and 3 are activated and a broken version 4 fails its activation. Zero
 * requests may fail; every answer names the version that served it; the event stream reports
 * each activation and the failure.
 */
let h: Harness;

beforeAll(async () => {
  h = await startAgent({ kinds: ['classifier'], limits: { maxConcurrentPerModel: 16 } });
});
afterAll(async () => h?.close());

describe('version switch under load', () => {
  it('16 concurrent clients see zero failures across two switches and a failed activation', async () => {
    const ac = new AbortController();
    const events: AgentEventMessage[] = [];
    const stream = (async () => {
      for await (const e of h.client.events({ signal: ac.signal })) events.push(e);
    })();
    // Let the stream connect before anything happens.
    while (h.server.metrics.render().includes('outpost_api_event_clients 0'))
      await new Promise((r) => setTimeout(r, 10));

    const png = await encodePng(rectsImage(40, 40, [200, 20, 20], []));
    let stop = false;
    const seen = new Map<number, number>();
    const failures: unknown[] = [];
    let done = 0;
    const client = async (i: number) => {
      while (!stop) {
        try {
          if (i % 2 === 0) {
            const r = await h.client.infer(
              'acme/classifier',
              { data: { dtype: 'float32', shape: [1, 3, 32, 32], data: randomInput(3072, i) } },
              { binary: i % 4 === 0 },
            );
            seen.set(Number(r.meta.model_version), (seen.get(Number(r.meta.model_version)) ?? 0) + 1);
          } else {
            const r = await h.client.predict('acme/classifier', png);
            expect((r.predictions![0] as { label: string }).label).toBe('red');
            seen.set(r.version, (seen.get(r.version) ?? 0) + 1);
          }
          done++;
        } catch (err) {
          failures.push(err);
        }
      }
    };
    const clients = Array.from({ length: 16 }, (_, i) => client(i));
    const waitFor = async (n: number) => {
      const target = done + n;
      while (done < target) await new Promise((r) => setTimeout(r, 5));
    };

    await waitFor(50);
    await h.addVersion('classifier', 2);
    await waitFor(50);
    await h.addVersion('classifier', 3);
    await waitFor(50);
    // A broken version 4: its activation fails and version 3 keeps serving.
    const broken = join(h.dir, 'models', 'classifier', '4');
    await writeModelFolder(broken, 'classifier', { id: 'acme/classifier' });
    await writeFile(join(broken, 'model.onnx'), 'not an onnx file');
    await expect(h.runtime.activate('acme/classifier', 4, broken)).rejects.toMatchObject({
      code: expect.stringMatching(/^RUNTIME_/),
    });
    await waitFor(50);
    stop = true;
    await Promise.all(clients);

    expect(failures).toEqual([]);
    // 50 answers between switches and at most 16 in flight: each version served some.
    expect([...seen.keys()].sort()).toEqual([1, 2, 3]);
    expect(seen.get(4)).toBeUndefined();
    // After the switches, every new request goes to version 3.
    const after = await h.client.infer('acme/classifier', {
      data: { dtype: 'float32', shape: [1, 3, 32, 32], data: randomInput(3072) },
    });
    expect(after.meta.model_version).toBe('3');
    expect((await h.client.model('acme/classifier')).versions).toEqual(['3']);

    while (events.filter((e) => e.type === 'failed').length === 0) await new Promise((r) => setTimeout(r, 10));
    ac.abort();
    await stream;
    expect(events.map((e) => `${e.type} ${e.model} ${e.version}`)).toEqual([
      'activated acme/classifier 2',
      'activated acme/classifier 3',
      'failed acme/classifier 4',
    ]);
    expect(events[2]!.code).toMatch(/^RUNTIME_/);
    expect(events.every((e) => typeof e.id === 'string' && typeof e.at === 'string')).toBe(true);
    const metrics = await h.client.metrics();
    expect(metrics).toContain('outpost_model_loads_total{model="acme/classifier",event="activated"} 2');
  });

  it('replays missed events to a client that reconnects with Last-Event-ID', async () => {
    const ac = new AbortController();
    const got: AgentEventMessage[] = [];
    for await (const e of h.client.events({ signal: ac.signal, lastEventId: '1' })) {
      got.push(e);
      if (got.length === 2) ac.abort();
    }
    expect(got.map((e) => e.version)).toEqual([3, 4]);
  });
});
