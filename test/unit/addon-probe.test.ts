import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { probeCapabilities } from '../../agent/system/probe.js';
import {
  jetpackFor,
  myriadKind,
  parseCudaVersion,
  parseDeviceTreeModel,
  parseNvInferVersion,
  parseOpenCvBuild,
  parseTegraRelease,
} from '../../agent/system/probe-parse.js';

// Sample contents in the shapes these files have on JetPack 4.6 / 5 hosts.
const NANO_RELEASE =
  '# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64, DATE: Sat Feb 19 17:05:08 UTC 2022\n';
const XAVIER_RELEASE =
  '# R35 (release), REVISION: 3.1, GCID: 32827747, BOARD: t186ref, EABI: aarch64, DATE: Sun Mar 19 15:19:21 UTC 2023\n';

describe('capability probe parsers', () => {
  it('reads the L4T release and maps it to JetPack', () => {
    expect(parseTegraRelease(NANO_RELEASE)).toBe('32.7.1');
    expect(jetpackFor('32.7.1')).toBe('4.6.1');
    expect(parseTegraRelease(XAVIER_RELEASE)).toBe('35.3.1');
    expect(jetpackFor('35.3.1')).toBe('5.1.1');
    expect(jetpackFor('32.6.1')).toBe('4.6');
    expect(jetpackFor('99.0.0')).toBeNull();
    expect(parseTegraRelease('garbage')).toBeNull();
  });

  it('maps the device-tree model to the model JSON device', () => {
    expect(parseDeviceTreeModel('NVIDIA Jetson Nano Developer Kit\0')).toEqual({
      model: 'NVIDIA Jetson Nano Developer Kit',
      device: 'nano',
    });
    expect(parseDeviceTreeModel('NVIDIA Jetson Xavier NX Developer Kit\0')?.device).toBe('xavier-nx');
    expect(parseDeviceTreeModel('Jetson-AGX\0')?.device).toBeNull();
    expect(parseDeviceTreeModel('NVIDIA Jetson AGX Xavier [16GB]\0')?.device).toBe('agx-xavier');
    expect(parseDeviceTreeModel('NVIDIA Jetson Orin Nano Developer Kit\0')?.device).toBeNull();
    expect(parseDeviceTreeModel('Raspberry Pi 4 Model B Rev 1.4\0')?.device).toBeNull();
    expect(parseDeviceTreeModel('')).toBeNull();
  });

  it('reads TensorRT, CUDA, Myriad and OpenCV build facts', () => {
    expect(
      parseNvInferVersion(
        '#define NV_TENSORRT_MAJOR 8 //!< major\n#define NV_TENSORRT_MINOR 2\n#define NV_TENSORRT_PATCH 1\n#define NV_TENSORRT_BUILD 8\n',
      ),
    ).toBe('8.2.1');
    expect(parseNvInferVersion('nothing')).toBeNull();
    expect(parseCudaVersion('{"cuda": {"name": "CUDA SDK", "version": "11.4.19"}}')).toBe('11.4.19');
    expect(parseCudaVersion('CUDA Version 10.2.300\n')).toBe('10.2.300');
    expect(myriadKind('03e7\n', '2485\n')).toBe('Myriad X (unbooted)');
    expect(myriadKind('8086', '2485')).toBeNull();
    const cv = parseOpenCvBuild(
      '  NVIDIA CUDA:                   YES (ver 10.2, CUFFT CUBLAS FAST_MATH)\n  cuDNN:                         YES (ver 8.2.1)\n',
    );
    expect(cv).toEqual({ cuda: true, cudnn: true, openvino: false });
    expect(parseOpenCvBuild('  NVIDIA CUDA:                   NO\n').cuda).toBe(false);
  });

  it('probes a fake Jetson root with a Hailo device and a Myriad stick', async () => {
    const root = await mkdtemp(join(tmpdir(), 'outpost-probe-'));
    try {
      const put = async (p: string, text: string) => {
        await mkdir(join(root, p, '..'), { recursive: true });
        await writeFile(join(root, p), text);
      };
      await put('etc/nv_tegra_release', NANO_RELEASE);
      await put('proc/device-tree/model', 'NVIDIA Jetson Nano Developer Kit\0');
      await put(
        'usr/include/aarch64-linux-gnu/NvInferVersion.h',
        '#define NV_TENSORRT_MAJOR 8\n#define NV_TENSORRT_MINOR 2\n#define NV_TENSORRT_PATCH 1\n',
      );
      await put('usr/local/cuda/version.txt', 'CUDA Version 10.2.300\n');
      await put('dev/hailo0', '');
      await put('dev/null', '');
      await put('sys/bus/usb/devices/1-1/idVendor', '03e7\n');
      await put('sys/bus/usb/devices/1-1/idProduct', '2485\n');
      await put('sys/bus/usb/devices/1-2/idVendor', '046d\n');
      const caps = await probeCapabilities({ root });
      expect(caps.jetson).toEqual({
        model: 'NVIDIA Jetson Nano Developer Kit',
        device: 'nano',
        l4t: '32.7.1',
        jetpack: '4.6.1',
      });
      expect(caps.tensorrt).toBe('8.2.1');
      expect(caps.cuda).toBe('10.2.300');
      expect(caps.hailo).toEqual(['/dev/hailo0']);
      expect(caps.myriad).toEqual([{ path: '/sys/bus/usb/devices/1-1', kind: 'Myriad X (unbooted)' }]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
