import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/** Codes of backends, pre- and post-processing, activation. */
export const RUNTIME = {
  RUNTIME_BACKEND_UNAVAILABLE: {
    status: 503,
    exit: EXIT.INCOMPATIBLE,
    hint: "No backend that can run this model's framework is available on this device (library, addon or hardware missing). `outpost agent status` lists every backend with the reason it is unavailable.",
  },
  RUNTIME_BACKEND_UNKNOWN: {
    status: 400,
    exit: EXIT.INCOMPATIBLE,
    hint: 'No backend of this name is registered. Use one of the names that `outpost agent status` lists.',
  },
  RUNTIME_MODEL_LOAD_FAILED: {
    status: 422,
    exit: EXIT.INVALID_INPUT,
    hint: "The backend could not load the model file (corrupt, wrong format for the framework, or an operator it does not support). The message has the engine's words; re-export the model or pick another framework.",
  },
  RUNTIME_SMOKE_TEST_FAILED: {
    status: 422,
    exit: EXIT.INVALID_INPUT,
    hint: 'The model loaded but failed its trial run on a synthetic input, so it was not activated and the previous version stays active. Check the input size in alwaysai.model.json against the network.',
  },
  RUNTIME_LABELS_INVALID: {
    status: 422,
    exit: EXIT.INVALID_INPUT,
    hint: "The label or colors file of the model could not be read or does not match the model's outputs. Fix the file named in the message and publish a new version.",
  },
  RUNTIME_INPUT_INVALID: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'An input tensor does not match the model: unknown or missing name, wrong dtype, wrong shape, or data of the wrong length. The message names the input and what the model expects.',
  },
  RUNTIME_IMAGE_INVALID: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: "The image could not be decoded (not JPEG or PNG, truncated, empty, or too large) or a raw frame's width, height, channels and byte length disagree. Send a JPEG or PNG, or a consistent raw frame.",
  },
  RUNTIME_OUTPUT_UNEXPECTED: {
    status: 500,
    exit: EXIT.INCOMPATIBLE,
    hint: "The model's outputs do not have a layout that the post-processing for its purpose understands (for example not [1,1,N,7] or [1,N,5+C] for detection). Check purpose and output_layer_names in alwaysai.model.json.",
  },
  RUNTIME_INFERENCE_FAILED: {
    status: 500,
    exit: EXIT.FAILURE,
    hint: "The backend failed while running the model. The message has the engine's words; the log has the details.",
  },
  RUNTIME_MODEL_UNLOADED: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: 'The model version was unloaded while the request was being prepared. Retry; the active version will answer.',
    retryable: true,
  },
  RUNTIME_MODEL_NOT_LOADED: {
    status: 404,
    exit: EXIT.NOT_FOUND,
    hint: 'The runtime serves no active version of this model (or not this version). Install and activate it, or check the name with `outpost agent status`.',
  },
  RUNTIME_RAW_TENSORS_ONLY: {
    status: 422,
    exit: EXIT.INCOMPATIBLE,
    hint: 'The model is served, but only as raw tensors: its input is not one image or post-processing cannot read its outputs. The message names the layout it found and what to set in alwaysai.model.json (architecture, output_layer_names, input_format); until then use KServe inference (/v2/models/{name}/infer).',
  },
  RUNTIME_QUEUE_FULL: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: "The model's session is busy and onnx.maxQueuedPerModel runs already wait for it. Retry after the Retry-After header's seconds, send fewer requests at once, or raise onnx.maxQueuedPerModel in agent.json.",
    retryable: true,
  },
  RUNTIME_WORKER_EXITED: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: 'The worker thread running this model stopped (a crash in the engine, an exit, or a resource limit) while the request was in flight. The agent restarts it with a backoff and loads the model again; retry. If it keeps stopping, the model becomes unhealthy (RUNTIME_WORKER_UNHEALTHY) and the agent log says why each time.',
    retryable: true,
  },
  RUNTIME_WORKER_UNHEALTHY: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: "The model's worker thread stopped more often than onnx.workerRestarts allows within onnx.workerRestartWindowMs, so the agent stopped restarting it; /v2/health/ready, the model's /ready and the reported state show the model as unhealthy. Read the agent log for the exits, fix the cause (memory, a model that crashes onnxruntime), then load the model again (POST /v2/repository/models/{name}/load), restart the agent, or deploy another version.",
  },
  RUNTIME_VERSION_BUDGET: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: 'Loading this kept (non-active) version would exceed the memory budget for on-demand versions, and the versions holding it are in use. Retry shortly (idle versions are unloaded), use the active version, or raise versions.budgetBytes in agent.json.',
    retryable: true,
  },
} as const satisfies ErrorTable;
