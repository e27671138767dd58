import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TrtDevice } from '../../protocol/manifest-types.js';
import { loadAddon, loadedAddon } from '../runtime/backends/native-loader.js';
import type { OpenCvBinding } from '../runtime/backends/opencv-binding.js';
import {
  jetpackFor,
  myriadKind,
  parseCudaVersion,
  parseDeviceTreeModel,
  parseNvInferVersion,
  parseOpenCvBuild,
  parseTegraRelease,
} from './probe-parse.js';

/**
 * The capability probe the agent reports: what accelerators and SDKs this host has. It only
 * reads files (and asks the OpenCV addon for its build), never opens a device, and never
 * throws: anything unreadable is simply absent. Presence here is not proof that inference works;
 * the backends' availability() says that.
 */
export interface Capabilities {
  jetson: { model: string; device: TrtDevice | null; l4t: string | null; jetpack: string | null } | null;
  tensorrt: string | null;
  cuda: string | null;
  hailo: string[];
  myriad: { path: string; kind: string }[];
  opencv: { version: string; cuda: boolean; cudnn: boolean; openvino: boolean } | null;
}

export interface ProbeRoots {
  /** Prefix for every absolute path read (tests point it at a fake root). */
  root?: string;
  /**
   * false: report OpenCV only if its addon is already loaded (the daemon's probe, which must not
   * dlopen libopencv for a device whose models never use it). Default true: load it to ask.
   */
  loadOpenCv?: boolean;
}

const TRT_HEADERS = [
  '/usr/include/aarch64-linux-gnu/NvInferVersion.h',
  '/usr/include/x86_64-linux-gnu/NvInferVersion.h',
  '/usr/include/NvInferVersion.h',
];

export async function probeCapabilities(opts: ProbeRoots = {}): Promise<Capabilities> {
  const at = (p: string) => join(opts.root ?? '/', p);
  const read = (p: string) => readFile(at(p), 'utf8').catch(() => null);

  const dt = parseDeviceTreeModel((await read('/proc/device-tree/model')) ?? '');
  const l4t = parseTegraRelease((await read('/etc/nv_tegra_release')) ?? '');
  const jetson = dt && /jetson|nvidia/i.test(dt.model) ? { ...dt, l4t, jetpack: l4t ? jetpackFor(l4t) : null } : null;

  let tensorrt: string | null = null;
  for (const h of [
    ...(process.env.TENSORRT_ROOT ? [join(process.env.TENSORRT_ROOT, 'include/NvInferVersion.h')] : []),
    ...TRT_HEADERS,
  ]) {
    tensorrt = parseNvInferVersion((await read(h)) ?? '');
    if (tensorrt) break;
  }
  const cuda = parseCudaVersion(
    (await read('/usr/local/cuda/version.json')) ?? (await read('/usr/local/cuda/version.txt')) ?? '',
  );

  const hailo = ((await readdir(at('/dev')).catch(() => [])) as string[])
    .filter((n) => /^hailo\d+$/.test(n))
    .map((n) => `/dev/${n}`);

  const myriad: { path: string; kind: string }[] = [];
  const usb = '/sys/bus/usb/devices';
  for (const dev of (await readdir(at(usb)).catch(() => [])) as string[]) {
    const kind = myriadKind(
      (await read(`${usb}/${dev}/idVendor`)) ?? '',
      (await read(`${usb}/${dev}/idProduct`)) ?? '',
    );
    if (kind) myriad.push({ path: `${usb}/${dev}`, kind });
  }

  let opencv: Capabilities['opencv'] = null;
  if (!opts.root) {
    const a =
      opts.loadOpenCv === false
        ? loadedAddon<OpenCvBinding>('outpost_opencv_dnn')
        : loadAddon<OpenCvBinding>('outpost_opencv_dnn');
    if (a?.ok) {
      const info = a.binding.buildInfo();
      opencv = { version: info.version, ...parseOpenCvBuild(info.buildInformation), cuda: info.cuda };
    }
  }
  return { jetson, tensorrt, cuda, hailo, myriad, opencv };
}
