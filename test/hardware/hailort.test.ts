import { basename, dirname } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createHailoRtBackend } from '../../agent/runtime/backends/hailort.js';
import { skipForHardware } from '../helpers/requires.js';
import { buildNet } from '../fixtures/caffe/nets.js';
import { params } from '../integration/addon-model-dirs.js';

/**
 * On a host with a Hailo-8 and HailoRT: loads the HEF named by OUTPOST_HAILO_HEF (HEFs are
 * compiled by Hailo's Dataflow Compiler, which cannot run here) with quantize_input=true,
 * runs it on a mid-grey frame and checks that every output has its declared shape.
 */
const HEF = process.env.OUTPOST_HAILO_HEF;
const backend = createHailoRtBackend();
const a = await backend.availability();
const why = !a.available ? a.reason! : !HEF ? 'set OUTPOST_HAILO_HEF to a compiled .hef for this device' : null;

describe.skipIf(skipForHardware(why))('HailoRT on a Hailo-8', () => {
  it('loads a HEF and runs one frame', async () => {
    const p = {
      ...params(buildNet('classifier'), 'hailo', basename(HEF!)),
      quantize_input: true,
      quantize_output: false,
      input_format: 'auto',
      output_format: 'auto',
    };
    const model = await backend.load({ dir: dirname(HEF!), params: p });
    const input = model.inputs[0]!;
    const shape = input.shape.map((d) => d ?? 1);
    const out = await model.run({
      [input.name]: { dtype: 'float32', shape, data: new Float32Array(shape.reduce((x, y) => x * y, 1)).fill(128) },
    });
    for (const o of model.outputs) expect(out[o.name]!.shape).toEqual(o.shape);
    await model.dispose();
  });
});
