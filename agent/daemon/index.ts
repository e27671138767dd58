import { join } from 'node:path';
import { createLogger, type Logger, moduleLogger } from '../../protocol/log.js';
import { toOutpostError } from '../../protocol/errors/index.js';
import type { AgentConfig } from '../../protocol/agent-config.js';
import { loadAgentConfig, diffReloadable, applyReloadable, type LoadedAgentConfig } from '../config/index.js';
import { openStore, type Store } from '../store/index.js';
import { BackendRegistry, defaultEntries } from '../runtime/registry.js';
import { filePlacementMemo } from '../runtime/backends/onnx-placement.js';
import { serveInstalled } from './boot-models.js';
import { Runtime } from '../runtime/runtime.js';
import { createApiServer, EventHub, runtimeEventSource, servingRuntime, type ApiServer } from '../api/index.js';
import { createNotifier, type Notifier } from '../system/sd-notify.js';
import { startWatchdog } from '../system/watchdog.js';
import { packageInfo } from '../system/package-root.js';
import { releaseYoungGeneration } from '../system/startup-heap.js';
import { compileCacheStats, flushCompileCache } from '../system/compile-cache.js';
import type { MqttSession } from '../sync/mqtt-session.js';
import type { Reconciler } from '../sync/reconciler.js';
import { compatibilityCheck } from '../sync/compatibility.js';
import type { SyncEngine } from './sync-engine.js';
import { probeHost } from './host.js';
import { meteredRuntime } from './metered-runtime.js';
import { createTelemetry, type Telemetry } from '../telemetry/index.js';
import type { TrustStore } from '../sync/trust-store.js';

/** The installed package's version (GET /v2, the reported state, --version). */
export const AGENT_VERSION: string = packageInfo().version;

export interface DaemonOptions {
  configPath?: string;
  /** A config already loaded (and validated) by the caller; `agent run` reads it first to exit 3 on it. */
  loaded?: LoadedAgentConfig;
  /** Dotted keys from the command line (`modelsDir`, `socket`), applied over file and env. */
  overrides?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
  log?: Logger;
}

export interface Daemon {
  readonly config: AgentConfig;
  readonly store: Store;
  readonly runtime: Runtime;
  readonly api: ApiServer;
  readonly session: MqttSession;
  readonly reconciler: Reconciler;
  readonly telemetry: Telemetry;
  readonly trust: TrustStore;
  /** Re-reads the config and applies what can change without a restart (SIGHUP). */
  reload(): Promise<{ applied: string[]; restartNeeded: string[] }>;
  /** The graceful stop, in the order startDaemon's comment gives. Idempotent. */
  stop(opts?: { graceMs?: number }): Promise<void>;
}

/**
 * The agent daemon: config -> store -> runtime -> local API -> sync, in that order, so that the
 * device serves what it has before (and whether or not) it reaches the broker. Shutdown (`stop`) runs
 * in the reverse order: stop taking requests and let in-flight ones finish, park downloads (their
 * partial files stay and resume), publish `offline`, unload models.
 */
export async function startDaemon(opts: DaemonOptions = {}): Promise<Daemon> {
  const env = opts.env ?? process.env;
  const loaded = opts.loaded ?? (await loadAgentConfig({ path: opts.configPath, env, overrides: opts.overrides }));
  let config = loaded.config;
  const root = opts.log ?? createLogger({ level: config.log.level, name: 'outpost-agent' });
  const log = moduleLogger(root, 'daemon', { device: config.deviceId });
  const notifier: Notifier = createNotifier({ env, log: root });
  notifier.status('opening the models folder');

  const store = await openStore({
    dir: config.modelsDir,
    keep: config.keepVersions,
    log: root,
    concurrency: config.download.parallel,
    marginBytes: config.download.minFreeBytes,
    retries: config.download.retries,
  });

  const storeOpened = uptimeMs();

  // Serve what is installed before anything else: a device that boots offline keeps working.
  // Older kept versions are served on demand by /versions/{v} routes (docs/local-api.md).
  const placement = filePlacementMemo(join(config.modelsDir, '.outpost', 'placement.json'), { log: root });
  const runtime = new Runtime({
    log: root,
    registry: new BackendRegistry({ log: root, entries: defaultEntries({ onnx: config.onnx, placement }) }),
    versions: { resolve: (id, v) => store.versionDir(id, v) },
  });
  // Model events for /v1/events: activations and failed loads come from the runtime, installs and
  // rollbacks from the reconciler.
  const hub = new EventHub();
  runtimeEventSource(runtime).subscribe((e) => hub.publish(e));
  await serveInstalled(store, runtime, log);
  const modelsServed = uptimeMs();

  let syncStarted: SyncEngine | undefined;
  let markSyncReady!: (s: SyncEngine) => void;
  const syncReady = new Promise<SyncEngine>((resolve) => {
    markSyncReady = resolve;
  });

  const telemetry: Telemetry = createTelemetry({
    deviceId: config.deviceId,
    modelsDir: config.modelsDir,
    telemetry: config.telemetry,
    log: root,
    publish: (sample) => syncStarted?.session.publishTelemetry(sample),
  });

  const api = createApiServer({
    runtime: meteredRuntime(servingRuntime(runtime, { store }), (m, v, ms, ok) =>
      telemetry.recordInference(m, v, ms, ok),
    ),
    log: root,
    events: hub,
    limits: {
      maxBodyBytes: config.api.maxBodyBytes,
      maxConcurrentPerModel: config.api.maxConcurrentPerModel,
      maxBytesInFlight: config.api.maxBytesInFlight,
      requestTimeoutMs: config.api.requestTimeoutMs,
      maxConnections: config.api.maxConnections,
    },
    version: AGENT_VERSION,
    // Waits for the sync side when asked in the moment between READY and its start.
    status: async () => {
      const { session, reconciler } = syncStarted ?? (await syncReady);
      return {
        deviceId: config.deviceId,
        broker: { url: config.cloud.mqtt, connected: session.connected },
        sync: reconciler.report(),
      };
    },
  });
  await api.listen(config.socket, config.socketMode);
  // Where start-up time went, in ms since the process started, and the CPU time it took (a busy
  // device stretches the first, not the second): docs/runtime.md, "Start-up".
  const cpu = process.cpuUsage();
  const cache = compileCacheStats();
  const startup = {
    storeMs: Math.round(storeOpened),
    modelsMs: Math.round(modelsServed - storeOpened),
    listenMs: Math.round(uptimeMs() - modelsServed),
    cpuMs: Math.round((cpu.user + cpu.system) / 1000),
    // V8's code cache of the bundle (agent/system/compile-cache.ts): files compiled from it, and
    // without it (the first start after an install or upgrade).
    compileCache: cache.dir ? { hits: cache.hits, misses: cache.misses } : { off: cache.reason },
  };
  log.info({ socket: config.socket, models: runtime.list().length, startup }, 'local API listening');

  // READY once the socket listens, whether or not the broker is reachable: a device that boots
  // offline serves what it has, and systemd must not hold its dependents back for the network.
  notifier.ready(`serving ${runtime.list().length} model(s); connecting to ${config.cloud.mqtt}`);
  const watchdog = startWatchdog(notifier, env);

  // After READY, the sync side: mqtt.js, the TUF root metadata, the reconciler and the backends'
  // probe (what the reported state's capabilities say) are imported and run only now, so serving
  // the installed models never waits for modules the local API does not use.
  let host = await probeHost(root);
  let backends = await runtime.capabilities();
  // The first model of a framework loads its backend (and OpenCV's addon): read both again.
  const refreshCapabilities = async () => {
    backends = await runtime.capabilities();
    host = await probeHost(root);
  };
  const { createSyncEngine, startSync } = await import('./sync-engine.js');
  let sync: SyncEngine;
  try {
    sync = createSyncEngine(config, store, root, {
      incompatible: (m) => compatibilityCheck({ backends, deviceType: host.deviceType })(m),
      // Load + smoke-run once in the staging folder; activate() then reuses that instance.
      beforeActivate: async (dir, model) => {
        try {
          return await runtime.prepare(model.id, model.version, dir);
        } finally {
          await refreshCapabilities();
        }
      },
      onActivated: (id, version, dir) => runtime.activate(id, version, dir),
      onRemoved: (id) => runtime.unload(id),
      onEvent: (e) => {
        if (e.type === 'installed' || e.type === 'rolled-back')
          hub.publish({ type: e.type, model: e.model, version: e.version });
      },
      capabilities: () => ({ backends, host: host.summary }),
      servingOf: (id) => runtime.reportedServing(id),
      agentVersion: AGENT_VERSION,
      configSource: loaded.path,
    });
  } catch (err) {
    // The trust store could not be built: a trustedRoot of the right shape that fails its full
    // TUF parse (protocol/trust-root-shape.ts). Nothing was verified with it; stop serving and
    // fail as an invalid config fails before READY (exit 3, so systemd does not restart it).
    log.error({ code: toOutpostError(err).code }, 'the sync side could not start; stopping');
    notifier.stopping('stopping: the agent config is invalid');
    watchdog.stop();
    await api.close(0);
    await runtime.close();
    notifier.close();
    throw err;
  }

  const { session, reconciler, trust } = sync;
  // A model that became unhealthy is reported at once (servingOf above says how), not at the next
  // change; and so is its recovery when it is loaded again outside a deployment (repository load).
  const unhealthy = new Set<string>();
  runtime.events.on('health', (e) => {
    if (e.health) unhealthy.add(e.id);
    reconciler.publishNow();
  });
  runtime.events.on('activated', (e) => {
    if (unhealthy.delete(e.id)) reconciler.publishNow();
  });
  syncStarted = sync;
  markSyncReady(sync);
  const trustTimer = await startSync(sync, config, { notifier, telemetry, log, serving: () => runtime.list().length });
  // Always started: it samples only while telemetry.enabled, so a SIGHUP can turn it on later.
  telemetry.start();
  // Start-up is over: requests may grow the young generation again (agent/cli/bin.ts held it).
  releaseYoungGeneration();
  // After READY and the sync side's start: the code cache for what compiled without it, so the
  // next start reads it (what compiles later, with the first install, is written at the stop).
  writeCompileCache(log);

  let stopping: Promise<void> | null = null;
  const daemon: Daemon = {
    get config() {
      return config;
    },
    store,
    runtime,
    api,
    session,
    reconciler,
    telemetry,
    trust,
    async reload() {
      notifier.reloading('reloading configuration');
      try {
        const next = (await loadAgentConfig({ path: loaded.path, env, overrides: opts.overrides })).config;
        const diff = diffReloadable(config, next);
        config = applyReloadable(config, next);
        root.level = config.log.level;
        telemetry.reconfigure(config.telemetry);
        api.setLimits(config.api);
        await refreshCapabilities();
        // Restart-only keys keep their running value: say so, so the edit is not silently lost.
        if (diff.restartRequired.length > 0) {
          log.warn(
            { restartNeeded: diff.restartRequired },
            `not applied until a restart: ${diff.restartRequired.join(', ')} (systemctl restart outpost-agent)`,
          );
        }
        log.info({ applied: diff.reloadable, restartNeeded: diff.restartRequired }, 'configuration reloaded');
        return { applied: diff.reloadable, restartNeeded: diff.restartRequired };
      } finally {
        notifier.ready(`configuration reloaded; serving ${runtime.list().length} model(s)`);
      }
    },
    stop(stopOpts = {}) {
      stopping ??= (async () => {
        notifier.stopping('stopping: finishing requests in flight');
        log.info('stopping');
        telemetry.stop();
        clearInterval(trustTimer);
        await api.close(stopOpts.graceMs ?? 10_000);
        await reconciler.stop();
        await session.stop();
        await runtime.close();
        await placement.flush();
        writeCompileCache(log);
        watchdog.stop();
        notifier.close();
        log.info('stopped');
      })();
      return stopping;
    },
  };
  return daemon;
}

function writeCompileCache(log: Logger): void {
  const r = flushCompileCache();
  if (r.error) log.warn({ written: r.written }, `the compile cache was not written: ${r.error}`);
  else if (r.written > 0) log.debug({ written: r.written, dir: compileCacheStats().dir }, 'compile cache written');
}

/** ms since the process started; not performance.now(), whose first use loads perf_hooks (~1.5 ms). */
function uptimeMs(): number {
  return process.uptime() * 1000;
}
