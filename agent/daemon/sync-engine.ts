import { join } from 'node:path';
import type { AgentConfig } from '../../protocol/agent-config.js';
import type { Logger } from '../../protocol/log.js';
import type { Store } from '../store/index.js';
import { MqttSession } from '../sync/mqtt-session.js';
import { loadTransports } from '../sync/mqtt-connect.js';
import { Reconciler, type ReconcilerOptions } from '../sync/reconciler.js';
import { SyncState } from '../sync/sync-state.js';
import { TrustStore } from '../sync/trust-store.js';
import { legacyRoot, ROOT_MAX_BYTES } from '../../protocol/trust-root.js';
import { checkAgentConfigRoot } from '../../protocol/agent-config-root.js';
import { OutpostError } from '../../protocol/errors/index.js';
import { getSmall } from '../fetch/small-get.js';
import { sessionTopics } from './session-topics.js';
import type { Notifier } from '../system/sd-notify.js';
import type { Telemetry } from '../telemetry/index.js';
import { createCommandGate } from '../sync/command-gate.js';
import { NonceStore } from '../sync/nonce-store.js';
import { handleCommand } from './commands.js';

/**
 * The MQTT session and the reconciler of one device, built from its config: the part of the
 * daemon that keeps the models folder in the signed desired state. The daemon adds the runtime
 * (compatibility check, activation) through `hooks`; the fan-out bench builds light agents from the same function.
 * The reconciler's reports go out through the session; wiring the session's messages to the
 * reconciler is the caller's (the daemon also answers commands).
 */
export type SyncHooks = Pick<
  ReconcilerOptions,
  'incompatible' | 'beforeActivate' | 'onActivated' | 'onRemoved' | 'onEvent' | 'capabilities' | 'servingOf'
>;

export interface SyncEngine {
  session: MqttSession;
  reconciler: Reconciler;
  trust: TrustStore;
}

export function createSyncEngine(
  config: AgentConfig,
  store: Store,
  log: Logger,
  hooks: SyncHooks & { agentVersion: string; configSource?: string },
): SyncEngine {
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
  const trust = createTrustStore(config, log, {
    minRefreshMs: config.trust.minRefreshMs,
    configSource: hooks.configSource,
  });
  const reconciler = new Reconciler({
    ...hooks,
    deviceId: config.deviceId,
    trust,
    store,
    blobs: { baseUrl: config.cloud.http, headers: { authorization: `Bearer ${config.credentials.token}` } },
    state: new SyncState(join(config.modelsDir, '.outpost', 'sync.json')),
    publish: (doc) => session.publishReported(doc),
    log,
  });
  return { session, reconciler, trust };
}

/**
 * Starts a daemon's sync side: desired states go to the reconciler, signed commands through the
 * command gate, connection changes to systemd's status line; then the reconciler resumes, the
 * session connects, and the root of trust is walked now and every hour. Returns the hourly timer.
 */
export async function startSync(
  sync: SyncEngine,
  config: AgentConfig,
  ctx: { notifier: Notifier; telemetry: Telemetry; log: Logger; serving: () => number },
): Promise<NodeJS.Timeout> {
  const { session, reconciler, trust } = sync;
  const { notifier, telemetry, log } = ctx;
  session.on('desired', (payload) => reconciler.onDesired(payload));
  const gate = createCommandGate({
    deviceId: config.deviceId,
    trust,
    nonces: new NonceStore(join(config.modelsDir, '.outpost', 'nonces.json')),
  });
  session.on('command', (name, payload) => {
    void handleCommand(name, payload, { gate, reconciler, telemetry, log }).then((res) => session.respond(name, res));
  });
  session.on('connected', () =>
    notifier.status(`connected to ${config.cloud.mqtt}; serving ${ctx.serving()} model(s)`),
  );
  session.on('disconnected', () => notifier.status(`broker unreachable, retrying; serving ${ctx.serving()} model(s)`));
  await reconciler.start();
  await loadTransports(config.cloud.mqtt);
  session.start();
  // Catch up with rotations made while the device was off, then look again every hour: a root
  // that revoked a key is learnt even when no document by a new key arrives to prompt a walk.
  void trust.refresh();
  return setInterval(() => void trust.refresh(), 3600_000).unref();
}

/**
 * The device's root of trust: agent.json's trustedRoot, or for a config provisioned before roots
 * existed its trustedKeys as the implicit root v1; walked forward from the cloud's
 * /v1/trust/root/<N>.json with the device's own token (the roots are public, the token only
 * identifies the reader). The root gets its full TUF parse here, before anything is verified with
 * it (protocol/agent-config-root.ts); a bad one throws CONFIG_INVALID naming `configSource`.
 */
export function createTrustStore(
  config: AgentConfig,
  log: Logger,
  opts: { minRefreshMs?: number; configSource?: string } = {},
): TrustStore {
  const base = config.cloud.http.replace(/\/$/, '');
  return new TrustStore({
    initial: checkAgentConfigRoot(config, opts.configSource ?? 'the agent config') ?? legacyRoot(config.trustedKeys),
    path: join(config.modelsDir, '.outpost', 'trust.json'),
    fetchRoot: (version) =>
      getSmall(
        `${base}/v1/trust/root/${version}.json`,
        { authorization: `Bearer ${config.credentials.token}` },
        {
          maxBytes: ROOT_MAX_BYTES,
          timeoutMs: 10_000,
          tooLarge: (size) =>
            new OutpostError('TRUST_ROOT_TOO_LARGE', `root v${version} is ${size} bytes, more than ${ROOT_MAX_BYTES}`, {
              version,
              size,
            }),
        },
      ),
    log,
    minRefreshMs: opts.minRefreshMs,
  });
}
