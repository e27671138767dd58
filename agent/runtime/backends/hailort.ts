import { open, stat } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';
import { OutpostError } from '../../../protocol/errors/index.js';
import type { Availability, Backend, LoadedModel, ModelSource } from '../backend.js';
import { probeCapabilities } from '../../system/probe.js';
import { loadAddon, native, type AddonLoad } from './native-loader.js';
import type { NativeTensor } from './opencv-binding.js';
import { float32Info, NativeModel } from './native-model.js';

/**
 * The HailoRT backend (framework hailo: `.hef`, also named `.bin` in the seed's example) over
 * addons/hailort. quantize_input / quantize_output / input_format / output_format from the model
 * JSON go to the addon unchanged (see addons/hailort/hailort.cc for their meaning). Shapes are
 * the vstreams' host shapes, [1, H, W, C] (NHWC) unless input_format says otherwise.
 * Not exercised on a Hailo-8 yet.
 */
interface HailoModel {
  run(inputs: NativeTensor[]): Promise<NativeTensor[]>;
  dispose(): void;
  info(): { inputs: { name: string; shape: number[] }[]; outputs: { name: string; shape: number[] }[] };
}
interface HailoBinding {
  abi: number;
  load(o: {
    hef: string;
    quantizeInput: boolean;
    quantizeOutput: boolean;
    inputFormat: string;
    outputFormat: string;
  }): Promise<HailoModel>;
  version(): string | null;
}

const FORMATS = ['auto', 'none', 'nhwc', 'nchw', 'nc'];

/** HEF files begin with the magic 0x01484546 ("\x01HEF" read big-endian). */
export function isHef(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x01 && head[1] === 0x48 && head[2] === 0x45 && head[3] === 0x46;
}

export function createHailoRtBackend(opts: { binding?: AddonLoad<HailoBinding> } = {}): Backend {
  const addon = () => opts.binding ?? loadAddon<HailoBinding>('outpost_hailort');
  return {
    name: 'hailort',
    frameworks: ['hailo'],
    async availability(): Promise<Availability> {
      const a = addon();
      if (!a.ok)
        return {
          available: false,
          reason: `HailoRT SDK not found when the addons were built, or not loadable here: ${a.reason}`,
        };
      const devices = (await probeCapabilities()).hailo;
      if (devices.length === 0)
        return { available: false, reason: 'the HailoRT addon loaded but no /dev/hailo* device exists' };
      return { available: true, details: { hailort: a.binding.version(), devices, testedOnHardware: false } };
    },
    async load(source: ModelSource): Promise<LoadedModel> {
      const a = addon();
      if (!a.ok)
        throw new OutpostError('RUNTIME_BACKEND_UNAVAILABLE', `the hailort backend is unavailable: ${a.reason}`, {
          backend: 'hailort',
        });
      const p = source.params;
      const full = resolve(source.dir, p.model_file);
      const rel = relative(resolve(source.dir), full);
      if (rel.startsWith('..') || isAbsolute(rel))
        throw new OutpostError(
          'ADDON_MODEL_FILE_MISSING',
          `model_file ${p.model_file} resolves outside the model folder`,
          { file: p.model_file },
        );
      const st = await stat(full).catch(() => null);
      if (!st?.isFile() || st.size === 0)
        throw new OutpostError('ADDON_MODEL_FILE_MISSING', `model_file ${p.model_file} is missing or empty`, {
          file: p.model_file,
        });
      const fh = await open(full, 'r');
      const head = Buffer.alloc(4);
      try {
        await fh.read(head, 0, 4, 0);
      } finally {
        await fh.close();
      }
      if (!isHef(head))
        throw new OutpostError(
          'ADDON_MODEL_MISMATCH',
          `model_file ${p.model_file} is not a HEF file (no HEF magic); framework hailo needs a compiled .hef`,
          { file: p.model_file },
        );
      for (const key of ['input_format', 'output_format'] as const) {
        const v = p[key];
        if (v !== undefined && !FORMATS.includes(v.toLowerCase())) {
          throw new OutpostError('ADDON_MODEL_MISMATCH', `${key} "${v}" is not one of ${FORMATS.join(', ')}`, {
            key,
            value: v,
          });
        }
      }
      const model = await native(() =>
        a.binding.load({
          hef: full,
          quantizeInput: p.quantize_input ?? false,
          quantizeOutput: p.quantize_output ?? false,
          inputFormat: (p.input_format ?? 'auto').toLowerCase(),
          outputFormat: (p.output_format ?? 'auto').toLowerCase(),
        }),
      );
      const io = model.info();
      return new NativeModel('hailort', model, io.inputs.map(float32Info), io.outputs.map(float32Info));
    },
  };
}
