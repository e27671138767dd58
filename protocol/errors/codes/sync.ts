import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/** Codes of the agent's reconcile loop: the compatibility check and imperative commands. */
export const SYNC = {
  SYNC_WRONG_DEVICE_TYPE: {
    status: 409,
    exit: EXIT.INCOMPATIBLE,
    hint: 'The model (a TensorRT engine) was built for another device type than this one. Build the engine on or for this device type, publish it with the right --device, and deploy that version.',
  },
  SYNC_NO_BACKEND: {
    status: 409,
    exit: EXIT.INCOMPATIBLE,
    hint: "No inference backend on this device can run the model's framework (the reported capabilities say why each one is unavailable). Deploy a model in a framework the device supports, or install the missing SDK.",
  },
  SYNC_COMMAND_INVALID: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'A command sent to the device was malformed (the message names the field). Send one of sync, rollback {"model": "owner/name"}, report, telemetry.',
  },
  SYNC_PINNED_BY_ROLLBACK: {
    status: 409,
    exit: EXIT.CONFLICT,
    hint: 'An operator rolled this model back on the device; the agent will not reinstall the version it rolled back from until the desired state changes. Deploy again (or roll back in the cloud) to move on.',
  },
} as const satisfies ErrorTable;
