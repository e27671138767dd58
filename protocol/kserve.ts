/**
 * KServe v2 / Open Inference Protocol: the wire types of the agent's `/v2/...` routes, and the one
 * parser and encoder that both the agent's server and the typed client use, JSON tensors, the
 * binary-tensor extension and shared-memory parameters alike. Each part has its own file in
 * protocol/kserve/: wire.ts (types, dtypes, shared checks), json.ts, binary.ts,
 * shm-parameters.ts, request.ts, response.ts.
 */
export {
  type WireDType,
  type WireTensorData,
  type WireTensor,
  KSERVE_DATATYPE,
  type TensorMetadata,
  type ServerMetadata,
  type ModelMetadata,
  type InferParameters,
  type ShmRef,
  type ShmTensor,
  type InferInputJson,
  type InferOutputRequest,
  type InferRequestJson,
  type InferOutputJson,
  type InferResponseJson,
  type InferRequest,
  toKServeDatatype,
  dtypeOfDatatype,
  elementCount,
  elementBytes,
} from './kserve/wire.js';
export { isRegionName } from './kserve/shm-parameters.js';
export { floatToHalf, halfToFloat } from './kserve/json.js';
export { encodedOf, fromBytes, type EncodedBody } from './kserve/binary.js';
export { parseInferRequest, encodeInferRequest } from './kserve/request.js';
export { encodeInferResponse, parseInferResponse } from './kserve/response.js';
