export {
  AgentClient,
  DEFAULT_SOCKET,
  type AgentClientOptions,
  type AgentEventMessage,
  type FrameInput,
  type InferOptions,
  type OutputRequest,
  type PredictAnswer,
  type PredictOptions,
} from './client.js';
export { SharedMemoryObject } from './shm.js';
export type { ShmRef, ShmTensor, WireTensor as Tensor } from '../../protocol/kserve.js';
