import { stat } from 'node:fs/promises';
import { extname, isAbsolute, relative, resolve } from 'node:path';
import { OutpostError } from '../../../protocol/errors/index.js';
import type { Availability, Backend, LoadedModel, ModelSource } from '../backend.js';
import { probeCapabilities } from '../../system/probe.js';
import { loadAddon, native, type AddonLoad } from './native-loader.js';
import type { NativeTensor } from './opencv-binding.js';
import { float32Info, NativeModel } from './native-model.js';

/**
 * The OpenVINO backend over addons/openvino: framework myriad (a compiled `.blob` imported on
 * the MYRIAD device of OpenVINO 2022.3 LTS, the last release with Myriad) and framework dldt
 * (`.xml` + `.bin` compiled for CPU, or GPU when present). Not exercised on a Myriad stick yet.
 */
interface OvModel {
  run(inputs: NativeTensor[]): Promise<NativeTensor[]>;
  dispose(): void;
  info(): { inputs: { name: string; shape: number[] }[]; outputs: { name: string; shape: number[] }[] };
}
interface OvBinding {
  abi: number;
  load(o: { kind: 'blob' | 'ir'; model: string; weights?: string; device: string }): Promise<OvModel>;
  devices(): string[];
  version(): string;
}

export function createOpenVinoBackend(opts: { binding?: AddonLoad<OvBinding> } = {}): Backend {
  const addon = () => opts.binding ?? loadAddon<OvBinding>('outpost_openvino');
  return {
    name: 'openvino',
    frameworks: ['myriad', 'dldt'],
    async availability(): Promise<Availability> {
      const a = addon();
      if (!a.ok)
        return {
          available: false,
          reason: `OpenVINO 2022.3 not found when the addons were built, or not loadable here: ${a.reason}`,
        };
      const myriad = (await probeCapabilities()).myriad;
      return {
        available: true,
        details: {
          openvino: a.binding.version(),
          devices: a.binding.devices(),
          myriadSticks: myriad,
          testedOnHardware: false,
        },
      };
    },
    async load(source: ModelSource): Promise<LoadedModel> {
      const a = addon();
      if (!a.ok)
        throw new OutpostError('RUNTIME_BACKEND_UNAVAILABLE', `the openvino backend is unavailable: ${a.reason}`, {
          backend: 'openvino',
        });
      const p = source.params;
      const file = async (name: string, key: string, exts: string[]) => {
        const full = resolve(source.dir, name);
        const rel = relative(resolve(source.dir), full);
        if (rel.startsWith('..') || isAbsolute(rel))
          throw new OutpostError('ADDON_MODEL_FILE_MISSING', `${key} ${name} resolves outside the model folder`, {
            key,
            file: name,
          });
        if (!exts.includes(extname(full).toLowerCase()))
          throw new OutpostError(
            'ADDON_MODEL_MISMATCH',
            `${key} ${name}: ${p.framework_type} expects ${exts.join(' or ')}`,
            { key, file: name },
          );
        const st = await stat(full).catch(() => null);
        if (!st?.isFile() || st.size === 0)
          throw new OutpostError('ADDON_MODEL_FILE_MISSING', `${key} ${name} is missing or empty`, { key, file: name });
        return full;
      };
      const devices = a.binding.devices();
      let spec: Parameters<OvBinding['load']>[0];
      if (p.framework_type === 'myriad') {
        if (!devices.some((d) => d.startsWith('MYRIAD')))
          throw new OutpostError(
            'RUNTIME_BACKEND_UNAVAILABLE',
            'no Myriad stick is visible to OpenVINO (MYRIAD device missing)',
            { devices },
          );
        spec = { kind: 'blob', model: await file(p.model_file, 'model_file', ['.blob']), device: 'MYRIAD' };
      } else {
        if (!p.config_file)
          throw new OutpostError(
            'ADDON_MODEL_FILE_MISSING',
            'framework dldt needs config_file (the .xml) and model_file (the .bin)',
            { key: 'config_file' },
          );
        spec = {
          kind: 'ir',
          model: await file(p.config_file, 'config_file', ['.xml']),
          weights: await file(p.model_file, 'model_file', ['.bin']),
          device: devices.includes('GPU') ? 'GPU' : 'CPU',
        };
      }
      const model = await native(() => a.binding.load(spec));
      const io = model.info();
      return new NativeModel('openvino', model, io.inputs.map(float32Info), io.outputs.map(float32Info));
    },
  };
}
