import { basename, dirname } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createOpenVinoBackend } from '../../agent/runtime/backends/openvino.js';
import { probeCapabilities } from '../../agent/system/probe.js';
import { skipForHardware } from '../helpers/requires.js';
import { buildNet } from '../fixtures/caffe/nets.js';
import { params } from '../integration/addon-model-dirs.js';

/**
 * With a Myriad stick and OpenVINO 2022.3: imports the compiled blob named by OUTPOST_MYRIAD_BLOB
 * (made with OpenVINO's compile_tool -d MYRIAD) and runs one frame; outputs must have their
 * declared shapes. Skips, with the reason, everywhere else.
 */
const BLOB = process.env.OUTPOST_MYRIAD_BLOB;
const backend = createOpenVinoBackend();
const a = await backend.availability();
const sticks = (await probeCapabilities()).myriad;
const why = !a.available
  ? a.reason!
  : sticks.length === 0
    ? 'no Myriad stick (USB vendor 03e7) is plugged in'
    : !BLOB
      ? 'set OUTPOST_MYRIAD_BLOB to a compiled .blob'
      : null;

describe.skipIf(skipForHardware(why))('OpenVINO MYRIAD on a Myriad stick', () => {
  it('imports a blob and runs one frame', async () => {
    const model = await backend.load({
      dir: dirname(BLOB!),
      params: params(buildNet('classifier'), 'myriad', basename(BLOB!)),
    });
    const input = model.inputs[0]!;
    const shape = input.shape.map((d) => d ?? 1);
    const out = await model.run({
      [input.name]: { dtype: 'float32', shape, data: new Float32Array(shape.reduce((x, y) => x * y, 1)).fill(0.5) },
    });
    for (const o of model.outputs) expect(out[o.name]!.shape).toEqual(o.shape);
    await model.dispose();
  });
});
