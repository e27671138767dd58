import { OutpostError } from './errors/index.js';
import type { DesiredModel } from './desired-state.js';
import type { Framework } from './manifest-types.js';
import type { BackendCapability, Capabilities } from './reported-state.js';

/**
 * The compatibility check: a model this device cannot run is refused before a byte is downloaded
 * ("wrong software for the device" in docs/security.md), with a code the operator
 * sees in `outpost rollout status`. It lives in protocol/ because both sides run it: the agent
 * before it downloads, the cloud's `outpost plan` on the capabilities a device reported.
 *
 * - A framework with no available backend here: SYNC_NO_BACKEND, naming why each candidate is
 *   unavailable.
 * - A tensor-rt engine: TensorRT engines are specific to the GPU and TensorRT version they were
 *   built on, so the model's `device` must equal this host's Jetson type.
 * - A hailo model: the HailoRT backend must be available (a Hailo device present).
 */
export interface CompatibilityInput {
  backends: readonly BackendCapability[];
  /** nano | xavier-nx | agx-xavier when the host is a Jetson, else null. */
  deviceType: string | null;
}

export function compatibilityCheck(host: CompatibilityInput): (model: DesiredModel) => OutpostError | null {
  return (model) => {
    // Checked first: an engine for another device type is wrong whatever backends this host has,
    // and this is the reason the operator must act on (SYNC_NO_BACKEND would hide it off-Jetson).
    if (model.framework === 'tensor-rt' && model.device !== undefined && model.device !== host.deviceType) {
      return new OutpostError(
        'SYNC_WRONG_DEVICE_TYPE',
        `${model.id}@${model.version} is a TensorRT engine built for ${model.device}; this device is ${host.deviceType ?? 'not a Jetson'}`,
        { model: model.id, device: model.device, host: host.deviceType },
      );
    }
    const candidates = host.backends.filter((b) => (b.frameworks ?? []).includes(model.framework as Framework));
    const usable = candidates.filter((b) => b.available);
    if (usable.length === 0) {
      const why =
        candidates.length === 0
          ? 'no backend handles it'
          : candidates.map((b) => `${b.name}: ${b.reason ?? 'unavailable'}`).join('; ');
      return new OutpostError(
        'SYNC_NO_BACKEND',
        `${model.id}@${model.version} is a ${model.framework} model and this device cannot run it (${why})`,
        { model: model.id, framework: model.framework },
      );
    }
    return null;
  };
}

/** The Jetson type in a report's capabilities (the probe's `host.jetson.device`), else null. */
export function deviceTypeOf(caps: Capabilities): string | null {
  const jetson = caps.host?.jetson;
  if (jetson && typeof jetson === 'object' && typeof (jetson as { device?: unknown }).device === 'string')
    return (jetson as { device: string }).device;
  return null;
}
