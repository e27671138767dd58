export { Fleet, type DeploySpec, type DeployResult, type FleetOptions } from './fleet.js';
export { startFleetServices, SERVICE_USERNAME, type FleetServices, type FleetServicesOptions } from './start.js';
export { writeAgentConfig, type AgentConfigDraft } from './provision.js';
export { brokerAuthenticator } from './auth.js';
export { connectPublisher, type Publisher } from './publisher.js';
export type { RolloutDevice, RolloutModel } from './rollout.js';
export { parseTag, type Target, type TargetKind, type Deployment, type DeviceRecord } from './types.js';
