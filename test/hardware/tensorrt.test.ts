import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTensorRtBackend } from '../../agent/runtime/backends/tensorrt.js';
import { probeCapabilities } from '../../agent/system/probe.js';
import { buildNet, reference, sampleInput, toOnnx } from '../fixtures/caffe/nets.js';
import { skipForHardware } from '../helpers/requires.js';
import { params } from '../integration/addon-model-dirs.js';

/**
 * On a Jetson with TensorRT: builds an engine from the conformance classifier with trtexec,
 * runs it through the TensorRT backend and compares with the TypeScript reference (FP32 engine,
 * tolerance 1e-3). Skips, with the reason, everywhere else.
 */
const TRTEXEC = ['/usr/src/tensorrt/bin/trtexec', '/usr/bin/trtexec'].find((p) => existsSync(p));
const backend = createTensorRtBackend();
const a = await backend.availability();
const caps = await probeCapabilities();
const why = !a.available
  ? a.reason!
  : !caps.jetson?.device
    ? 'not a supported Jetson (nano, xavier-nx, agx-xavier)'
    : !TRTEXEC
      ? 'trtexec not found'
      : null;

describe.skipIf(skipForHardware(why))('TensorRT on a Jetson', () => {
  it('runs an engine built here and matches the reference', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'outpost-trt-'));
    try {
      const net = buildNet('classifier');
      await writeFile(join(dir, 'model.onnx'), toOnnx(net));
      execFileSync(TRTEXEC!, [`--onnx=${join(dir, 'model.onnx')}`, `--saveEngine=${join(dir, 'model.trt')}`], {
        stdio: 'ignore',
      });
      const model = await backend.load({
        dir,
        params: { ...params(net, 'tensor-rt', 'model.trt'), device: caps.jetson!.device! },
      });
      const [w, h] = net.size;
      const input = sampleInput(net);
      const out = Object.values(
        await model.run({ [model.inputs[0]!.name]: { dtype: 'float32', shape: [1, 3, h, w], data: input } }),
      )[0]!;
      const ref = reference(net, input);
      ref.forEach((v, i) => expect(Math.abs((out.data as Float32Array)[i]! - v)).toBeLessThan(1e-3));
      await model.dispose();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
