import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/**
 * Codes of the native addons (OpenCV DNN, TensorRT, HailoRT, OpenVINO) for what only they can
 * detect. Failures every backend shares use the RUNTIME codes (RUNTIME_INPUT_INVALID,
 * RUNTIME_INFERENCE_FAILED, RUNTIME_MODEL_UNLOADED, RUNTIME_BACKEND_UNAVAILABLE), also from C++.
 */
export const ADDON = {
  ADDON_MODEL_FILE_MISSING: {
    status: 422,
    exit: EXIT.INVALID_INPUT,
    hint: 'A file that the model JSON names (model_file or config_file) is missing, empty or outside the model folder. Check the file names in alwaysai.model.json and republish the version.',
  },
  ADDON_MODEL_MISMATCH: {
    status: 422,
    exit: EXIT.INVALID_INPUT,
    hint: 'The model files do not fit the framework_type (wrong extension or file signature, e.g. a .caffemodel given as Darknet weights). Fix framework_type or the file names in alwaysai.model.json.',
  },
  ADDON_MODEL_INVALID: {
    status: 422,
    exit: EXIT.INVALID_INPUT,
    hint: "The inference engine could not parse the model files (corrupt, truncated or an unsupported layer). Re-export the model and check it loads with the vendor's own tools.",
  },
  ADDON_ENGINE_VERSION_MISMATCH: {
    status: 409,
    exit: EXIT.INCOMPATIBLE,
    hint: 'The TensorRT engine was serialised by another TensorRT version than the one on this device. Rebuild the engine on (or for) this JetPack release and publish it as a new version.',
  },
  ADDON_DEVICE_MISMATCH: {
    status: 409,
    exit: EXIT.INCOMPATIBLE,
    hint: "The model JSON's `device` (nano, xavier-nx, agx-xavier) names another device than this one; TensorRT engines and HEF files only run on the device they were built for. Deploy the version built for this device.",
  },
  ADDON_DEVICE_ERROR: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: 'The accelerator or its runtime refused a call (device busy, not found, firmware or driver mismatch). The message has the vendor status; check the device with the vendor tool (hailortcli scan, tegrastats).',
    retryable: true,
  },
} as const satisfies ErrorTable;
