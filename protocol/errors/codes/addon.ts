import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/** Codes of the native addons (OpenCV DNN, TensorRT, HailoRT, OpenVINO). */
export const ADDON = {
  ADDON_UNAVAILABLE: { status: 503, exit: EXIT.UNAVAILABLE, hint: 'The backend\'s native addon is not built or its vendor library/device is missing here. `outpost agent status` shows the reason; install the SDK and run `npm run build:addons`, or use a model for another backend.' },
  ADDON_MODEL_FILE_MISSING: { status: 422, exit: EXIT.INVALID_INPUT, hint: 'A file that the model JSON names (model_file or config_file) is missing, empty or outside the model folder. Check the file names in alwaysai.model.json and republish the version.' },
  ADDON_MODEL_MISMATCH: { status: 422, exit: EXIT.INVALID_INPUT, hint: 'The model files do not fit the framework_type (wrong extension or file signature, e.g. a .caffemodel given as Darknet weights). Fix framework_type or the file names in alwaysai.model.json.' },
  ADDON_MODEL_INVALID: { status: 422, exit: EXIT.INVALID_INPUT, hint: 'The inference engine could not parse the model files (corrupt, truncated or an unsupported layer). Re-export the model and check it loads with the vendor\'s own tools.' },
  ADDON_INPUT_INVALID: { status: 400, exit: EXIT.INVALID_INPUT, hint: 'An input tensor has the wrong name, dtype, shape or length for the loaded model. The message names the tensor and what it expects.' },
  ADDON_RUN_FAILED: { status: 500, exit: EXIT.FAILURE, hint: 'The inference engine failed while running the model. The message carries the engine\'s own reason; check the model with the vendor\'s tools and report it with the log.' },
  ADDON_DISPOSED: { status: 409, exit: EXIT.CONFLICT, hint: 'The model was unloaded (a newer version was activated or the agent is stopping) before this call. Retry; the agent routes the call to the active version.' },
  ADDON_ENGINE_VERSION_MISMATCH: { status: 409, exit: EXIT.INCOMPATIBLE, hint: 'The TensorRT engine was serialised by another TensorRT version than the one on this device. Rebuild the engine on (or for) this JetPack release and publish it as a new version.' },
  ADDON_DEVICE_MISMATCH: { status: 409, exit: EXIT.INCOMPATIBLE, hint: 'The model JSON\'s `device` (nano, xavier-nx, agx-xavier) names another device than this one; TensorRT engines and HEF files only run on the device they were built for. Deploy the version built for this device.' },
  ADDON_DEVICE_ERROR: { status: 503, exit: EXIT.UNAVAILABLE, hint: 'The accelerator or its runtime refused a call (device busy, not found, firmware or driver mismatch). The message has the vendor status; check the device with the vendor tool (hailortcli scan, tegrastats).' },
} as const satisfies ErrorTable;
