import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startDaemon, type Daemon } from '../../agent/daemon/index.js';
import type { Logger } from '../../protocol/log.js';

/**
 * An in-process agent for the replica tests: its agent.json (as provisioned) in `dir`, its models
 * folder and socket beside it, quick reconnects, and optionally pinned to one replica's broker
 * (`mqtt`) instead of the advertised URL.
 */
export async function startReplicaDevice(
  dir: string,
  agentConfig: unknown,
  log: Logger,
  mqtt?: string | null,
): Promise<Daemon> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'agent.json'), JSON.stringify(agentConfig));
  return startDaemon({
    configPath: join(dir, 'agent.json'),
    overrides: {
      modelsDir: join(dir, 'models'),
      socket: join(dir, 'a.sock'),
      'telemetry.enabled': false,
      'mqtt.reconnectMinMs': 100,
      'mqtt.reconnectMaxMs': 1000,
      ...(mqtt ? { 'cloud.mqtt': mqtt } : {}),
    },
    env: {},
    log,
  });
}
