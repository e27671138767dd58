import { describe, expect, it } from 'vitest';
import {
  checkEngineDevice,
  checkEngineVersion,
  engineVersion,
  libraryVersion,
} from '../../agent/runtime/backends/tensorrt-engine.js';
import { isHef } from '../../agent/runtime/backends/hailort.js';

const header = (major: number, minor: number) => {
  const b = new Uint8Array(32);
  b.set([0x66, 0x74, 0x72, 0x74]);
  b[24] = major;
  b[25] = minor;
  return b;
};
const codeOf = (f: () => void) => {
  try {
    f();
    return 'ok';
  } catch (e) {
    return (e as { code: string }).code;
  }
};

describe('TensorRT engine checks', () => {
  it('decodes getInferLibVersion for 8.x and 10.x', () => {
    expect(libraryVersion(8201)).toEqual({ major: 8, minor: 2 });
    expect(libraryVersion(8601)).toEqual({ major: 8, minor: 6 });
    expect(libraryVersion(100300)).toEqual({ major: 10, minor: 3 });
  });

  it('reads the builder version only where the header layout applies', () => {
    expect(engineVersion(header(10, 3))).toEqual({ major: 10, minor: 3 });
    expect(engineVersion(header(8, 6))).toEqual({ major: 8, minor: 6 });
    expect(engineVersion(header(8, 2))).toBeNull();
    expect(engineVersion(new Uint8Array(10))).toBeNull();
  });

  it('refuses an engine from another TensorRT with ADDON_ENGINE_VERSION_MISMATCH', () => {
    expect(codeOf(() => checkEngineVersion(header(10, 3), 100300, 'm.trt'))).toBe('ok');
    expect(codeOf(() => checkEngineVersion(header(10, 3), 8601, 'm.trt'))).toBe('ADDON_ENGINE_VERSION_MISMATCH');
    expect(codeOf(() => checkEngineVersion(header(8, 6), 100300, 'm.trt'))).toBe('ADDON_ENGINE_VERSION_MISMATCH');
  });

  it('refuses an engine for another device with ADDON_DEVICE_MISMATCH', () => {
    expect(codeOf(() => checkEngineDevice('nano', 'nano'))).toBe('ok');
    expect(codeOf(() => checkEngineDevice('xavier-nx', 'nano'))).toBe('ADDON_DEVICE_MISMATCH');
    expect(codeOf(() => checkEngineDevice('nano', null))).toBe('ADDON_DEVICE_MISMATCH');
    expect(codeOf(() => checkEngineDevice(undefined, 'nano'))).toBe('ADDON_DEVICE_MISMATCH');
  });

  it('recognises the HEF magic', () => {
    expect(isHef(Uint8Array.from([0x01, 0x48, 0x45, 0x46, 0]))).toBe(true);
    expect(isHef(Uint8Array.from([0x46, 0x45, 0x48, 0x01]))).toBe(false);
  });
});
