import { describe, expect, it } from 'vitest';
import { compatibilityCheck } from '../../agent/sync/compatibility.js';
import type { DesiredModel } from '../../protocol/desired-state.js';

const model = (over: Partial<DesiredModel>): DesiredModel => ({
  id: 'a/m',
  version: 1,
  framework: 'onnx',
  purpose: 'Classification',
  files: [],
  ...over,
});
const backends = [
  { name: 'onnx', available: true, frameworks: ['onnx'] },
  { name: 'tensorrt', available: true, frameworks: ['tensor-rt'] },
  { name: 'hailort', available: false, reason: 'HailoRT library not found', frameworks: ['hailo'] },
];

describe('compatibility check', () => {
  it('lets a model with an available backend through', () => {
    expect(compatibilityCheck({ backends, deviceType: null })(model({}))).toBeNull();
  });

  it('refuses a framework whose backends are all unavailable, saying why', () => {
    const e = compatibilityCheck({ backends, deviceType: null })(model({ framework: 'hailo', architecture: 'yolov3' }));
    expect(e?.code).toBe('SYNC_NO_BACKEND');
    expect(e?.message).toContain('HailoRT library not found');
    expect(compatibilityCheck({ backends, deviceType: null })(model({ framework: 'caffe' }))?.code).toBe(
      'SYNC_NO_BACKEND',
    );
  });

  it('refuses a TensorRT engine built for another device type', () => {
    const check = compatibilityCheck({ backends, deviceType: 'nano' });
    expect(check(model({ framework: 'tensor-rt', device: 'agx-xavier' }))?.code).toBe('SYNC_WRONG_DEVICE_TYPE');
    expect(check(model({ framework: 'tensor-rt', device: 'nano' }))).toBeNull();
  });

  it('names the wrong device type even where no TensorRT backend is available', () => {
    const offJetson = [{ name: 'tensorrt', available: false, reason: 'not a Jetson', frameworks: ['tensor-rt'] }];
    const check = compatibilityCheck({ backends: offJetson, deviceType: null });
    expect(check(model({ framework: 'tensor-rt', device: 'nano' }))?.code).toBe('SYNC_WRONG_DEVICE_TYPE');
    // An engine with no declared device still needs an available backend.
    expect(check(model({ framework: 'tensor-rt' }))?.code).toBe('SYNC_NO_BACKEND');
  });
});
