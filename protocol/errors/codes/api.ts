import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/** Codes of the agent's local socket API (server and the typed client apps import). */
export const API = {
  API_BAD_JSON: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: "The request body is not valid JSON (or not a JSON object). Send a UTF-8 JSON object; the message gives the parser's position.",
  },
  API_BAD_INFER_REQUEST: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'The KServe v2 inference request is malformed (missing inputs, bad name, shape or parameters). The message names the field; see docs/local-api.md.',
  },
  API_UNKNOWN_DATATYPE: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'A tensor datatype is not one of BOOL, UINT8, INT8, INT32, INT64, FP16, FP32 (the types the agent can run). Use the datatype the model metadata lists.',
  },
  API_DTYPE_MISMATCH: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: "An input's datatype differs from the model's input. GET /v2/models/{name} lists the datatype each input expects.",
  },
  API_SHAPE_MISMATCH: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: "An input's shape does not match the model (or its data does not have shape-product elements). GET /v2/models/{name} lists the shapes; -1 is a free dimension.",
  },
  API_UNKNOWN_INPUT: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'The request names an input or output the model does not have, or misses one it needs. GET /v2/models/{name} lists them.',
  },
  API_BINARY_DATA: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: "The binary-tensor data does not add up: Inference-Header-Content-Length or a binary_data_size disagrees with the body (truncated or extra bytes). Send the JSON header, then each input's bytes in order.",
  },
  API_BAD_HEADER: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: 'A request header is invalid (for example Inference-Header-Content-Length is not a number within the body, or the HTTP header block is malformed). Fix the named header.',
  },
  API_UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    exit: EXIT.INVALID_INPUT,
    hint: "The body's Content-Type is not accepted by this route: infer takes application/json or application/octet-stream, predict takes image/jpeg, image/png or application/octet-stream.",
  },
  API_NOT_AN_IMAGE: {
    status: 415,
    exit: EXIT.INVALID_INPUT,
    hint: "The predict body is not a JPEG or PNG image (checked by its first bytes). Send the image file's bytes as the body.",
  },
  API_BODY_TOO_LARGE: {
    status: 413,
    exit: EXIT.INVALID_INPUT,
    hint: 'The request body is larger than api.maxBodyBytes of the agent config. Send a smaller image or tensor, or raise the limit.',
  },
  API_HEADERS_TOO_LARGE: {
    status: 431,
    exit: EXIT.INVALID_INPUT,
    hint: 'The request headers are larger than the server accepts. Send fewer or shorter headers.',
  },
  API_REQUEST_TIMEOUT: {
    status: 408,
    exit: EXIT.UNAVAILABLE,
    hint: 'The client did not send the whole request within api.requestTimeoutMs. Send the body without pauses, or raise the limit.',
    retryable: true,
  },
  API_METHOD_NOT_ALLOWED: {
    status: 405,
    exit: EXIT.USAGE,
    hint: 'This route exists but not with this HTTP method; the Allow header lists the methods it takes.',
  },
  API_MODEL_NOT_FOUND: {
    status: 404,
    exit: EXIT.NOT_FOUND,
    hint: 'No installed model has this name or alias. GET /v2/models lists them (`outpost agent status`); a name is owner/name URL-encoded (owner%2Fname) or the name part alone when unique.',
  },
  API_MODEL_AMBIGUOUS: {
    status: 409,
    exit: EXIT.CONFLICT,
    hint: 'The alias matches models of several owners. Use the full owner/name (URL-encoded as owner%2Fname).',
  },
  API_VERSION_NOT_FOUND: {
    status: 404,
    exit: EXIT.NOT_FOUND,
    hint: 'The model has no loaded version with this number. GET /v2/models/{name} shows the versions it serves; omit the version to use the active one.',
  },
  API_MODEL_NOT_READY: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: 'The model is known but has no version that can serve (its load failed). /v1/status shows its state and error; deploy a version that loads, or fix the one installed.',
    retryable: true,
  },
  API_SATURATED: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: "The model already runs api.maxConcurrentPerModel requests. Retry after the Retry-After header's seconds, or raise the limit.",
    retryable: true,
  },
  API_TOO_MANY_CONNECTIONS: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: 'The socket already has api.maxConnections open connections. Close idle connections (reuse one keep-alive connection per app thread), retry after the Retry-After seconds, or raise the limit.',
    retryable: true,
  },
  API_SHUTTING_DOWN: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: 'The agent is stopping and takes no new requests. Retry once it has restarted.',
    retryable: true,
  },
  API_SOCKET_IN_USE: {
    status: 500,
    exit: EXIT.CONFLICT,
    hint: 'Another process (probably another agent) is already listening on the socket path. Stop it, or give this agent another `socket` in its config.',
  },
  API_SOCKET_FAILED: {
    status: 500,
    exit: EXIT.FAILURE,
    hint: "The agent could not create its Unix socket. Check that the socket's folder exists and is writable by the agent's user (systemd RuntimeDirectory=outpost).",
  },
  API_UNREACHABLE: {
    status: 503,
    exit: EXIT.UNAVAILABLE,
    hint: "The client could not reach the agent's socket (absent, refused, or permission denied). Check that the agent runs (`systemctl status outpost-agent`), the --socket path, and that your user is in the socket's group.",
    retryable: true,
  },
  API_BAD_RESPONSE: {
    status: 502,
    exit: EXIT.FAILURE,
    hint: "The client received an answer it could not parse (the connection was cut, or a wrong server listens on the socket). Check the agent's log.",
  },
  API_OUTPUT_BUFFER_MISMATCH: {
    status: 400,
    exit: EXIT.INVALID_INPUT,
    hint: "An output buffer given to the client's infer (`outputs: [{ name, into }]`) does not fit the output the model returned: its typed array must be the output's datatype (Float32Array for FP32, BigInt64Array for INT64, Uint8Array for UINT8 and BOOL, Uint16Array for FP16) and hold at least the shape's element count. GET /v2/models/{name} lists each output's datatype and shape. Nothing was written past the buffer.",
  },
} as const satisfies ErrorTable;
