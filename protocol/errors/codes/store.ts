import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/** Codes of the models folder on the device (install, journal, rollback). */
export const STORE = {
  STORE_PATH_INVALID: {
    status: 422,
    exit: EXIT.INTEGRITY,
    hint: 'A file path in the model metadata is not a safe relative POSIX path (empty, absolute, "..", ".", backslash, NUL, empty segment) or is listed twice. Nothing was written. Republish the model with plain relative file names.',
  },
  STORE_FILE_MISMATCH: {
    status: 502,
    exit: EXIT.INTEGRITY,
    hint: 'A staged file does not match the signed metadata (size or sha256). The staging copy was discarded and the current version was left as it was; the next sync fetches the file again.',
  },
  STORE_NOT_INSTALLED: {
    status: 404,
    exit: EXIT.NOT_FOUND,
    hint: 'The model (or the asked version of it) is not installed on this device. Check `outpost agent status` for what is installed.',
  },
  STORE_NO_PREVIOUS_VERSION: {
    status: 409,
    exit: EXIT.CONFLICT,
    hint: 'There is no older kept version to roll back to. Deploy an explicit version instead, or raise the number of kept versions.',
  },
  STORE_ACTIVATION_FAILED: {
    status: 422,
    exit: EXIT.INCOMPATIBLE,
    hint: 'The version was staged and verified but the activation check (load and smoke inference) failed; the previous version stays active. details.cause has the reason.',
  },
  STORE_NO_SPACE: {
    status: 507,
    exit: EXIT.FAILURE,
    hint: 'The models filesystem is full: staging the new version failed and was undone, and the previous version keeps serving. Free disk space or lower the number of kept versions.',
    retryable: true,
  },
  STORE_JOURNAL_INVALID: {
    status: 500,
    exit: EXIT.FAILURE,
    hint: 'The store journal (<models-dir>/.outpost/journal.json) could not be read. It was set aside as journal.json.bad and recovery fell back to checking the folder; report it with the log.',
  },
  STORE_INVALID_ARGUMENT: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'A store call got an invalid argument (model id, version, sha256, size or option); the message names it.',
  },
} as const satisfies ErrorTable;
