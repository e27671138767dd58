/**
 * The API's JSON shapes the page reads, imported from the server's own definitions (type-only:
 * nothing of the server is bundled) so the page and the cloud cannot drift apart.
 */
export type { FleetPage, FleetRow, DeviceView, RowState } from '../../fleet/fleet-view.js';
export type { TelemetryPoint } from '../../fleet/telemetry-history.js';
export type { DeviceEvent } from '../../fleet/device-events.js';
export type { ModelView, VersionView } from '../../fleet/models-view.js';
export type { RolloutModel } from '../../fleet/rollout.js';
export type { WhoamiAnswer, ModelSummary } from '../../client/types.js';
export type { BackendCapability, Capabilities } from '../../../protocol/reported-state.js';
export type {
  AuditEntry,
  Plan,
  PlanDevice,
  RolloutBatchView,
  RolloutDeviceView,
  RolloutSummary,
  RolloutView,
} from '../../fleet/rollout-types.js';
export type { Count, RolloutPolicy } from '../../fleet/rollout-policy.js';
