import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/** Codes of the model folder, alwaysai.model.json and alwaysai.app.json (CLI side). */
export const MODEL = {
  MODEL_JSON_MISSING: {
    status: 404,
    exit: EXIT.NOT_FOUND,
    hint: 'There is no alwaysai.model.json in this folder. Run `outpost model configure` in the model folder first.',
  },
  MODEL_JSON_SYNTAX: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'alwaysai.model.json is not valid JSON. Fix the file (the message gives the parser error) or delete it and run `outpost model configure` again.',
  },
  MODEL_FIELD_MISSING: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'A field that the framework or purpose requires is missing from alwaysai.model.json. Add it (the message names it).',
  },
  MODEL_FIELD_INVALID: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'A field of alwaysai.model.json has a value that is not allowed. The message names the key, the bad value and the allowed values.',
  },
  MODEL_FLAG_MISSING: {
    status: 400,
    exit: EXIT.USAGE,
    hint: 'A flag that the framework or purpose requires was not given to `outpost model configure`. Add it (the message names it).',
  },
  MODEL_FLAG_INVALID: {
    status: 400,
    exit: EXIT.USAGE,
    hint: 'A flag of `outpost model configure` has a value that is not allowed. The message names the flag, the bad value and the allowed values.',
  },
  MODEL_PLACEHOLDER_ID: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'The "id" of alwaysai.model.json is still the placeholder <username>/<modelname>. Replace it with your user name and a model name, e.g. "alice/my-detector".',
  },
  MODEL_H5_UNSUPPORTED: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'Keras .h5 files are not supported (as in the aai workflow). Convert the model to a supported framework (for example ONNX) first.',
  },
  MODEL_PATH_OUTSIDE: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'A file path in the model JSON is absolute, contains "..", or resolves outside the model folder. Copy the file into the model folder and give its relative path.',
  },
  MODEL_FILE_MISSING: {
    status: 404,
    exit: EXIT.NOT_FOUND,
    hint: 'A file named in the model JSON (model, config, label or colors file) does not exist in the model folder, or is not a regular file.',
  },
  MODEL_COLORS_INVALID: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'The colors file must hold one color per line as <x>,<y>,<z> with integers 0-255. The message gives the first bad line.',
  },
  MODEL_FILE_CHANGED: {
    status: 409,
    exit: EXIT.INTEGRITY,
    hint: 'A model file changed while it was being hashed or uploaded. Wait until nothing writes to the model folder and publish again.',
  },
  APP_JSON_MISSING: {
    status: 404,
    exit: EXIT.NOT_FOUND,
    hint: 'There is no alwaysai.app.json in this folder. Run the command in the app folder, or add a model with `outpost app models add` to create it.',
  },
  APP_JSON_INVALID: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'alwaysai.app.json is not valid JSON or its "models" map is not {"owner/name": version}. Fix the file; the message names the key.',
  },
  APP_MODEL_NOT_IN_APP: {
    status: 404,
    exit: EXIT.NOT_FOUND,
    hint: 'The model is not in the app\'s "models" list, so there is nothing to remove. Run `outpost app models show` to see the list.',
  },
  APP_ID_UNKNOWN: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'The app\'s catalog id could not be determined. Set "outpost": {"app": "owner/name"} in alwaysai.app.json.',
  },
  CLI_NO_CLOUD: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: 'No cloud to talk to: pass --cloud URL or set OUTPOST_CLOUD_URL, or start a local one with `outpost cloud start` (it writes <data-dir>/cloud.json).',
    retryable: true,
  },
  CLI_VERB_UNAVAILABLE: {
    status: 501,
    exit: EXIT.FAILURE,
    hint: 'This verb is not part of this installation (its module is missing). Install the full Outpost package or use a newer version.',
  },
} as const satisfies ErrorTable;
