import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePng, twoBlocksImage } from '../fixtures/images.js';
import { PYTHON } from '../helpers/python.js';
import { missingCommand, skipForPackage } from '../helpers/requires.js';
import { randomInput, startAgent, type Harness } from './api-harness.js';

/**
 * The Python client (agent/client/python/outpost_client.py) against a real agent, run by
 * Debian's python3 (with python3-numpy, and once more with numpy hidden): every call's answer is
 * compared with the agent's own in-process answer to the same input.
 */
const why = missingCommand(PYTHON, ['-c', 'import numpy']);
const SCRIPT = fileURLToPath(new URL('./python/client_check.py', import.meta.url));

let h: Harness;
beforeAll(async () => {
  h = await startAgent({ kinds: ['classifier', 'ssd'] });
});
afterAll(async () => {
  await h?.close();
});

interface Line {
  name: string;
  value: unknown;
}

describe.skipIf(skipForPackage(why))('the Python client against a real agent', () => {
  it('health, models, metadata, infer (numpy, lists, shared memory), predict, errors, events', async () => {
    const fx = h.fixtures.classifier!;
    const shape = [1, 3, fx.size[1], fx.size[0]];
    const input = randomInput(3 * fx.size[0] * fx.size[1], 5);
    const img = twoBlocksImage();
    const pngPath = join(h.dir, 'img.png');
    const framePath = join(h.dir, 'frame.rgb');
    await writeFile(pngPath, await encodePng(img));
    await writeFile(framePath, img.data);
    const caseFile = join(h.dir, 'case.json');
    const shmKey = `/outpost-py-${process.pid}`;
    await writeFile(
      caseFile,
      JSON.stringify({
        model: 'acme/classifier',
        inputName: fx.inputName,
        outputName: fx.outputName,
        shape,
        input: Array.from(input),
        pngPath,
        framePath,
        frameWidth: img.width,
        frameHeight: img.height,
        shmKey,
      }),
    );
    const child = spawn(PYTHON, [SCRIPT, h.socket, caseFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    const lines: Line[] = [];
    const done = new Promise<number | null>((resolve) => child.once('exit', resolve));
    for await (const l of createInterface({ input: child.stdout })) {
      const line = JSON.parse(l) as Line;
      lines.push(line);
      if (line.name === 'events_wait') {
        // Once the client's stream is attached, a new version is activated: one event must reach it.
        while (((await h.client.status()).api as { eventClients: number }).eventClients < 1)
          await new Promise((r) => setTimeout(r, 20));
        await h.addVersion('classifier', 2);
      }
    }
    expect(await done, stderr).toBe(0);
    const get = (n: string) => lines.filter((l) => l.name === n).map((l) => l.value);

    const local = (
      await h.runtime.infer('acme/classifier', { [fx.inputName]: { dtype: 'float32', shape, data: input } })
    ).outputs[fx.outputName]!;
    const expected = Array.from(local.data as Float32Array);
    const png = await encodePng(img);
    const strip = (r: unknown) => ({
      ...(JSON.parse(JSON.stringify(r)) as object),
      duration: undefined,
      version: undefined,
    });
    const byPng = strip(await h.client.predict('acme/classifier', png));

    expect(get('live_ready')).toEqual([[true, true]]);
    expect(get('models')).toEqual([['acme/classifier', 'acme/ssd']]);
    expect(get('metadata')).toEqual([[{ name: fx.inputName, datatype: 'FP32', shape }]]);
    expect(get('server')[0]).toContain('system_shared_memory');
    expect(get('numpy')).toEqual([true]);
    expect(get('infer_numpy')).toEqual([expected]);
    expect(get('infer_shm')).toEqual([expected]);
    expect(get('infer_lists')).toEqual([expected]);
    expect((get('shm_status')[0] as { name: string; offset: number }[]).map((r) => [r.name, r.offset])).toEqual([
      ['py', 64],
    ]);
    expect(get('unknown_region')).toEqual(['API_SHM_REGION_UNKNOWN']);
    for (const n of ['predict_png', 'predict_frame', 'predict_shm']) expect(get(n).map(strip), n).toEqual([byPng]);
    expect(get('annotate_png_magic')).toEqual([[0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]]);
    expect(get('error')).toEqual([
      ['API_MODEL_NOT_FOUND', 404],
      ['API_NOT_AN_IMAGE', 415],
    ]);
    expect(get('unreachable')).toEqual(['API_UNREACHABLE']);
    expect(get('event')).toMatchObject([{ type: 'activated', model: 'acme/classifier', version: 2 }]);
  });
});
