import { OutpostError } from '../../../protocol/errors/index.js';
import type { TrtDevice } from '../../../protocol/manifest-types.js';

/**
 * Checks made before a TensorRT engine is handed to the runtime, as pure functions.
 *
 * TensorRT has no API that reads an engine's version without deserialising it. In the plan layout
 * written since 8.6, the builder's TensorRT major and minor version are bytes 24 and 25 of the
 * file (docs/addons.md, "Model checks before the engine sees a file", names the source). For older engines (and anything that
 * does not look like such a header) the check is left to deserialisation, whose version refusal
 * the addon maps to the same code.
 */
export interface EngineVersion {
  major: number;
  minor: number;
}

export function engineVersion(head: Uint8Array): EngineVersion | null {
  if (head.length < 28) return null;
  const major = head[24]!,
    minor = head[25]!;
  // Only trust the bytes where they can be a release this layout applies to (8.6 .. 10.x+).
  if ((major === 8 && minor >= 6) || (major >= 9 && major <= 20 && minor < 100)) return { major, minor };
  return null;
}

/** `library` is getInferLibVersion(): major*1000 + minor*100 + patch (8.x) or major*10000 + minor*100 + patch (10.x). */
export function libraryVersion(library: number): EngineVersion {
  return library >= 10000
    ? { major: Math.floor(library / 10000), minor: Math.floor(library / 100) % 100 }
    : { major: Math.floor(library / 1000), minor: Math.floor(library / 100) % 10 };
}

export function checkEngineVersion(head: Uint8Array, library: number, file: string): void {
  const built = engineVersion(head);
  if (!built) return;
  const here = libraryVersion(library);
  if (built.major !== here.major || built.minor !== here.minor) {
    throw new OutpostError(
      'ADDON_ENGINE_VERSION_MISMATCH',
      `${file} was built with TensorRT ${built.major}.${built.minor}, but this device runs TensorRT ${here.major}.${here.minor}; rebuild the engine for this JetPack release`,
      { file, built, here },
    );
  }
}

/** The model JSON's `device` must name the Jetson this runs on (from the capability probe). */
export function checkEngineDevice(wanted: TrtDevice | undefined, here: TrtDevice | null): void {
  if (!wanted) {
    throw new OutpostError(
      'ADDON_DEVICE_MISMATCH',
      'a tensor-rt model must name its device (nano, xavier-nx, agx-xavier) in alwaysai.model.json',
      { key: 'device' },
    );
  }
  if (wanted !== here) {
    throw new OutpostError(
      'ADDON_DEVICE_MISMATCH',
      `the engine was built for device "${wanted}", but this device is ${here ? `"${here}"` : 'not a supported Jetson'}; deploy the version built for this device`,
      { wanted, here },
    );
  }
}
