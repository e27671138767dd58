import { readFile, rm, writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCloud, type Cloud, type CloudOptions } from '../../cloud-broker/cloud.js';
import { FleetClient } from '../../cloud-broker/fleet/fleet-client.js';
import { startDaemon, type Daemon } from '../../agent/daemon/index.js';
import { AgentClient } from '../../agent/client/index.js';
import { writeModelFolder } from '../fixtures/model-folder.js';
import type { FixtureKind } from '../fixtures/onnx/models.js';
import { cleanEnv, runInProcess } from './cli.js';
import { createLogger, silentLogger } from '../../protocol/log.js';
import { testDatabase } from './test-db.js';

/**
 * A whole Outpost on this machine for integration tests: the real cloud (HTTP, SQLite, blobs,
 * aedes, fleet) on port 0 in a temp data dir, models published through the real CLI, devices
 * provisioned through the fleet API, and real agent daemons in temp models folders.
 */
export interface TestFleet {
  cloud: Cloud;
  root: string;
  adminToken: string;
  fleet: FleetClient;
  env: NodeJS.ProcessEnv;
  /** Writes a generated model folder and publishes it; returns the new version. */
  publish(id: string, kind?: FixtureKind, opts?: { labels?: string[]; force?: boolean }): Promise<number>;
  /** Provisions a device and writes its agent.json; returns the config path. */
  provision(id: string, tags?: string[]): Promise<string>;
  startAgent(id: string, overrides?: Record<string, unknown>): Promise<TestAgent>;
  close(): Promise<void>;
}

export interface TestAgent {
  daemon: Daemon;
  client: AgentClient;
  socket: string;
  modelsDir: string;
  stop(): Promise<void>;
}

/** `cloudOpts`: extra startCloud options (TLS, WebSocket), e.g. test/integration/tls-fleet.test.ts. */
export async function startTestFleet(
  cloudOpts: Pick<CloudOptions, 'tls' | 'wsPort' | 'limits' | 'externalBroker'> = {},
): Promise<TestFleet> {
  const root = await mkdtemp(join(tmpdir(), 'outpost-fleet-'));
  const database = await testDatabase();
  const cloud = await startCloud({ dataDir: join(root, 'cloud'), httpPort: 0, mqttPort: 0, database, ...cloudOpts });
  const adminToken = (await readFile(cloud.adminTokenFile, 'utf8')).trim();
  const fleet = new FleetClient({ url: cloud.httpUrl, token: adminToken });
  const env = cleanEnv({ OUTPOST_CLOUD_URL: cloud.httpUrl, OUTPOST_TOKEN: adminToken, HOME: root });
  const agents = new Set<TestAgent>();
  let folder = 0;

  const t: TestFleet = {
    cloud,
    root,
    adminToken,
    fleet,
    env,
    async publish(id, kind = 'classifier', opts = {}) {
      const dir = join(root, `model-${++folder}`);
      await writeModelFolder(dir, kind, { id });
      if (opts.labels) await writeFile(join(dir, 'labels.txt'), opts.labels.join('\n') + '\n');
      const run = await runInProcess(['model', 'publish', '--json', ...(opts.force ? ['--force'] : [])], {
        cwd: dir,
        env,
      });
      if (run.code !== 0) throw new Error(`publish failed (${run.code}): ${run.stdout} ${run.stderr}`);
      return run.json<{ version: number }>().version;
    },
    async provision(id, tags = []) {
      const { agentConfig } = await fleet.provision(id, tags);
      const path = join(root, `agent-${id}.json`);
      await writeFile(path, JSON.stringify(agentConfig, null, 2));
      return path;
    },
    async startAgent(id, overrides = {}) {
      const configPath = join(root, `agent-${id}.json`);
      const modelsDir = join(root, `models-${id}`);
      const socket = join(root, `${id}.sock`);
      const daemon = await startDaemon({
        configPath,
        overrides: {
          modelsDir,
          socket,
          'telemetry.enabled': false,
          'mqtt.reconnectMinMs': 100,
          'mqtt.reconnectMaxMs': 1000,
          ...overrides,
        },
        env: {},
        log: process.env.OUTPOST_TEST_LOG ? createLogger({ level: process.env.OUTPOST_TEST_LOG }) : silentLogger,
      });
      const agent: TestAgent = {
        daemon,
        socket,
        modelsDir,
        client: new AgentClient({ socket }),
        async stop() {
          agents.delete(agent);
          await daemon.stop({ graceMs: 2000 });
        },
      };
      agents.add(agent);
      return agent;
    },
    async close() {
      for (const a of [...agents]) await a.stop().catch(() => undefined);
      await cloud.close();
      await rm(root, { recursive: true, force: true });
    },
  };
  return t;
}

/** Polls `check` until it returns a truthy value (or throws after `timeoutMs` with the last value). */
export async function waitFor<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs = 20_000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      last = await check();
      if (last) return last as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out waiting for ${what}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`,
      );
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** True when the agent reports `model` active at `version`. */
export function activeAt(agent: TestAgent, model: string, version: number): boolean {
  const m = agent.daemon.reconciler.report().models.find((x) => x.id === model);
  return m?.state === 'active' && m.activeVersion === version;
}
