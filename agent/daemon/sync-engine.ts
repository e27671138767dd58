import { join } from 'node:path';
import type { AgentConfig } from '../../protocol/agent-config.js';
import type { Logger } from '../../protocol/log.js';
import type { Store } from '../store/index.js';
import { MqttSession } from '../sync/mqtt-session.js';
import { Reconciler, type ReconcilerOptions } from '../sync/reconciler.js';
import { SyncState } from '../sync/sync-state.js';
import { sessionTopics } from './session-topics.js';

/**
 * The MQTT session and the reconciler of one device, built from its config: the part of the
 * daemon that keeps the models folder in the signed desired state. The daemon adds the runtime
 * (compatibility check, activation) through `hooks`; the fan-out bench builds light agents from the same function.
 * The reconciler's reports go out through the session; wiring the session's messages to the
 * reconciler is the caller's (the daemon also answers commands).
 */
export type SyncHooks = Pick<
  ReconcilerOptions,
  'incompatible' | 'beforeActivate' | 'onActivated' | 'onRemoved' | 'onEvent' | 'capabilities'
>;

export function createSyncEngine(
  config: AgentConfig,
  store: Store,
  log: Logger,
  hooks: SyncHooks & { agentVersion: string },
): { session: MqttSession; reconciler: Reconciler } {
  const session = new MqttSession({
    url: config.cloud.mqtt,
    deviceId: config.deviceId,
    username: config.credentials.username,
    password: config.credentials.token,
    topics: sessionTopics(config.deviceId),
    keepaliveSeconds: config.mqtt.keepaliveSeconds,
    reconnectMinMs: config.mqtt.reconnectMinMs,
    reconnectMaxMs: config.mqtt.reconnectMaxMs,
    ca: config.cloud.ca,
    log,
    agentVersion: hooks.agentVersion,
  });
  const reconciler = new Reconciler({
    ...hooks,
    deviceId: config.deviceId,
    trustedKeys: config.trustedKeys,
    store,
    blobs: { baseUrl: config.cloud.http, headers: { authorization: `Bearer ${config.credentials.token}` } },
    state: new SyncState(join(config.modelsDir, '.outpost', 'sync.json')),
    publish: (doc) => session.publishReported(doc),
    log,
  });
  return { session, reconciler };
}
