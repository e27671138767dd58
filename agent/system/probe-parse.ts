import type { TrtDevice } from '../../protocol/manifest-types.js';

/**
 * Pure parsers of the files the capability probe reads; tested on sample contents in
 * test/unit/addon-probe.test.ts. Each returns null for content it does not recognise, never
 * throws: a strange file must not stop the agent from reporting the rest.
 */

/** `/etc/nv_tegra_release`: "# R32 (release), REVISION: 7.1, GCID: ..." -> "32.7.1". */
export function parseTegraRelease(text: string): string | null {
  const m = /^#\s*R(\d+)\s*\(release\),\s*REVISION:\s*(\d+)\.(\d+)/m.exec(text);
  return m ? `${m[1]}.${m[2]}.${m[3]}` : null;
}

// L4T -> JetPack, from NVIDIA's JetPack archive release notes (newest match first).
const JETPACK: [string, string][] = [
  ['36.4', '6.1+'],
  ['36.3', '6.0'],
  ['36.2', '6.0 DP'],
  ['35.6', '5.1.4'],
  ['35.5', '5.1.3'],
  ['35.4', '5.1.2'],
  ['35.3', '5.1.1'],
  ['35.2', '5.1'],
  ['35.1', '5.0.2'],
  ['32.7.4', '4.6.4'],
  ['32.7.3', '4.6.3'],
  ['32.7.2', '4.6.2'],
  ['32.7.1', '4.6.1'],
  ['32.6.1', '4.6'],
  ['32.5', '4.5'],
];

export function jetpackFor(l4t: string): string | null {
  for (const [prefix, jp] of JETPACK) if (l4t === prefix || l4t.startsWith(`${prefix}.`)) return jp;
  return null;
}

/** `/proc/device-tree/model` (NUL-terminated) -> the model name and the model JSON's device id. */
export function parseDeviceTreeModel(text: string): { model: string; device: TrtDevice | null } | null {
  const model = text.replace(/\0+$/, '').trim();
  if (!model) return null;
  let device: TrtDevice | null = null;
  if (/orin/i.test(model)) device = null;
  else if (/xavier\s*nx/i.test(model)) device = 'xavier-nx';
  else if (/agx\s*xavier/i.test(model)) device = 'agx-xavier';
  else if (/jetson\s*nano/i.test(model) || /jetson-nano/i.test(model)) device = 'nano';
  return { model, device };
}

/** NvInferVersion.h: NV_TENSORRT_MAJOR/MINOR/PATCH (8.x also has NV_TENSORRT_BUILD). */
export function parseNvInferVersion(text: string): string | null {
  const get = (k: string) => new RegExp(`#define\\s+NV_TENSORRT_${k}\\s+(\\d+)`).exec(text)?.[1];
  const [ma, mi, pa] = [get('MAJOR'), get('MINOR'), get('PATCH')];
  return ma && mi && pa ? `${ma}.${mi}.${pa}` : null;
}

/** CUDA's version.json ({"cuda": {"version": "..."}}) or older version.txt ("CUDA Version 10.2.300"). */
export function parseCudaVersion(text: string): string | null {
  try {
    const v = (JSON.parse(text) as { cuda?: { version?: unknown } }).cuda?.version;
    if (typeof v === 'string') return v;
  } catch {
    // not JSON: the older text file
  }
  return /CUDA Version\s+([\d.]+)/.exec(text)?.[1] ?? null;
}

/** USB ids of Intel Movidius Myriad sticks (vendor 03e7): 2485 Myriad X, 2150 Myriad 2, f63b booted. */
export function myriadKind(vendor: string, product: string): string | null {
  if (vendor.trim().toLowerCase() !== '03e7') return null;
  const p = product.trim().toLowerCase();
  return p === '2485'
    ? 'Myriad X (unbooted)'
    : p === '2150'
      ? 'Myriad 2 (unbooted)'
      : p === 'f63b'
        ? 'Myriad (booted by a host)'
        : `Movidius device ${p}`;
}

/** cv::getBuildInformation() -> the options that choose the DNN backend and target. */
export function parseOpenCvBuild(text: string): { cuda: boolean; cudnn: boolean; openvino: boolean } {
  const yes = (label: string) => new RegExp(`^\\s*${label}:\\s*YES`, 'mi').test(text);
  return {
    cuda: yes('NVIDIA CUDA'),
    cudnn: yes('cuDNN'),
    openvino: yes('OpenVINO') || /Inference Engine:\s*YES/i.test(text),
  };
}
