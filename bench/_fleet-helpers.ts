/**
 * Pieces for fleet-scale benchmarks (not a benchmark itself: run.ts skips files starting with `_`).
 *
 * A "light agent" is the real device-side sync path without the parts that do not scale to
 * hundreds of copies on a 2-core machine: the real MqttSession, Reconciler, SyncState and Store
 * (download, hash, atomic install) in its own models folder, provisioned through the real fleet
 * API, but no runtime (onnxruntime) and no Unix-socket API. Its activation hook does nothing and
 * its compatibility check accepts every model, so what it measures is transport, verification and
 * installation, never inference. Benchmarks using it must say so in their output.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startCloud, type Cloud } from '../cloud-broker/cloud.js';
import { CloudClient } from '../cloud-broker/client/cloud-client.js';
import { FleetClient } from '../cloud-broker/fleet/fleet-client.js';
import { createSyncEngine } from '../agent/daemon/sync-engine.js';
import { openStore, type Store } from '../agent/store/index.js';
import type { MqttSession } from '../agent/sync/mqtt-session.js';
import type { Reconciler } from '../agent/sync/reconciler.js';
import type { TrustStore } from '../agent/sync/trust-store.js';
import { parseAgentConfig } from '../protocol/agent-config.js';
import type { AgentConfigDraft } from '../cloud-broker/fleet/provision.js';
import type { Logger } from '../protocol/log.js';

export interface BenchCloud {
  cloud: Cloud;
  catalog: CloudClient;
  fleet: FleetClient;
}

/** The real cloud (HTTP, SQLite catalog, blob store, aedes, fleet) on port 0 in `dir`. */
export async function startBenchCloud(dir: string, log: Logger): Promise<BenchCloud> {
  const cloud = await startCloud({ dataDir: dir, httpPort: 0, mqttPort: 0, log });
  const token = (await readFile(cloud.adminTokenFile, 'utf8')).trim();
  return {
    cloud,
    catalog: new CloudClient({ url: cloud.httpUrl, token }),
    fleet: new FleetClient({ url: cloud.httpUrl, token }),
  };
}

/** Writes `bytes` of incompressible data (every MiB differs) to `file`; returns its sha256. */
export async function writeRandomFile(file: string, bytes: number): Promise<string> {
  const block = randomBytes(1024 * 1024);
  const hash = createHash('sha256');
  const out = createWriteStream(file);
  for (let at = 0, i = 0; at < bytes; at += block.length, i++) {
    block.writeUInt32LE(i, 0);
    const chunk = Buffer.from(block.subarray(0, Math.min(block.length, bytes - at)));
    hash.update(chunk);
    if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
  return hash.digest('hex');
}

/**
 * Publishes a one-file model version the way `outpost model publish` does on the wire (HEAD,
 * PUT the blob, create the version). Returns the version and the blob's sha256 and size.
 */
export async function publishFile(
  catalog: CloudClient,
  id: string,
  file: string,
  sha256: string,
  size: number,
): Promise<{ version: number }> {
  const [owner, name] = id.split('/');
  if (!(await catalog.hasBlob(sha256))) await catalog.putBlob(sha256, size, createReadStream(file));
  const created = await catalog.createVersion(owner, name, {
    manifest: { id, model_parameters: { model_file: 'model.bin' } },
    files: [{ path: 'model.bin', sha256, size }],
  });
  return { version: created.version };
}

export interface LightAgent {
  id: string;
  token: string;
  modelsDir: string;
  session: MqttSession;
  reconciler: Reconciler;
  /** The device's trusted root, for a command gate (bench/rollout.ts answers commands). */
  trust: TrustStore;
  store: Store;
  /** Resolves once the session subscribed and announced itself (first connect). */
  ready: Promise<void>;
  /** performance.now() of the last desired-state message received, or null. */
  lastDesiredAt(): number | null;
  /** True when the agent reports `model` active at `version`. */
  activeAt(model: string, version: number): boolean;
  stop(): Promise<void>;
}

/**
 * Provisions device `id` through the fleet API and starts a light agent for it under `root`,
 * wired as agent/daemon/index.ts wires the real one (same config parsing and defaults).
 */
export async function startLightAgent(fleet: FleetClient, id: string, root: string, log: Logger): Promise<LightAgent> {
  const { agentConfig } = await fleet.provision(id, ['bench']);
  const agent = await createLightAgent(agentConfig, root, log);
  agent.connect();
  return agent;
}

/**
 * A light agent from an already provisioned agent.json draft: its store opened and its
 * reconciler started, but no connection yet, so a caller can open many and then start them all
 * at once (bench/scale.ts measures that connect storm). `overrides` are agent.json keys, e.g.
 * the reconnect back-off.
 */
export async function createLightAgent(
  agentConfig: AgentConfigDraft,
  root: string,
  log: Logger,
  overrides: Record<string, unknown> = {},
): Promise<LightAgent & { connect(): void }> {
  const id = agentConfig.deviceId;
  const modelsDir = join(root, `models-${id}`);
  const config = parseAgentConfig({ ...agentConfig, ...overrides, modelsDir }, `provisioned ${id}`);
  const store = await openStore({
    dir: config.modelsDir,
    keep: config.keepVersions,
    log,
    concurrency: config.download.parallel,
    marginBytes: config.download.minFreeBytes,
    retries: config.download.retries,
  });
  // No runtime here: every model is accepted and activation runs nothing (see the file comment).
  const { session, reconciler, trust } = createSyncEngine(config, store, log, {
    incompatible: () => null,
    beforeActivate: async () => undefined,
    capabilities: () => ({ backends: [], host: { bench: 'light agent: no runtime' } }),
    agentVersion: 'bench-light',
  });
  let desiredAt: number | null = null;
  session.on('desired', (payload) => {
    desiredAt = performance.now();
    reconciler.onDesired(payload);
  });
  const ready = new Promise<void>((resolve) => session.once('connected', resolve));
  await reconciler.start();
  return {
    id,
    token: config.credentials.token,
    modelsDir,
    session,
    reconciler,
    trust,
    store,
    ready,
    connect: () => session.start(),
    lastDesiredAt: () => desiredAt,
    activeAt(model, version) {
      const m = reconciler.report().models.find((x) => x.id === model);
      return m?.state === 'active' && m.activeVersion === version;
    },
    async stop() {
      await reconciler.stop();
      await session.stop();
    },
  };
}

/** Polls `check` every `everyMs` until true; throws naming `what` after `timeoutMs`. */
export async function pollUntil(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  everyMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
