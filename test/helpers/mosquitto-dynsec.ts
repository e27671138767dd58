import { promises as fs } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { findDynsecPlugin, initDynsecFile, mosquittoDynsecConf } from '../../cloud-broker/broker/mosquitto.js';
import { closedPort } from './daemon-process.js';
import { mosquittoProcess } from './mosquitto.js';
import { missingCommand } from './requires.js';

/** Why Mosquitto 2 with its dynamic-security plugin cannot run here, or null. */
export async function missingDynsec(): Promise<string | null> {
  const cmd = missingCommand('sh', ['-c', 'command -v mosquitto && command -v mosquitto_ctrl']);
  if (cmd) return `${cmd} (apt-get install mosquitto mosquitto-clients)`;
  return (await findDynsecPlugin()) ? null : 'mosquitto_dynamic_security.so not found (Debian ships it in mosquitto)';
}

/**
 * A real mosquitto 2 child with the dynamic-security plugin, its config made by
 * `mosquitto_ctrl dynsec init` with one admin (no password file, no ACL file anywhere).
 * `pid` is the running process's: a test compares it before and after to show no restart and
 * no SIGHUP was needed (the helper never sends one).
 */
export interface DynsecMosquitto {
  readonly port: number;
  readonly dir: string;
  readonly dynsecFile: string;
  readonly admin: { username: string; password: string };
  readonly url: string;
  pid(): number | undefined;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function startDynsecMosquitto(root: string): Promise<DynsecMosquitto> {
  const dir = join(root, 'mosquitto-dynsec');
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const port = await closedPort();
  const plugin = (await findDynsecPlugin())!;
  const admin = { username: 'outpost-admin', password: `adm-${Math.random().toString(36).slice(2)}` };
  const dynsecFile = join(dir, 'dynamic-security.json');
  await initDynsecFile(dynsecFile, admin.username, admin.password);
  const conf = join(dir, 'mosquitto.conf');
  await fs.writeFile(
    conf,
    mosquittoDynsecConf({ host: '127.0.0.1', port, plugin, dynsecFile, user: os.userInfo().username }),
    { mode: 0o600 },
  );
  const proc = mosquittoProcess(conf, port);
  const m: DynsecMosquitto = {
    port,
    dir,
    dynsecFile,
    admin,
    url: `mqtt://127.0.0.1:${port}`,
    pid: () => proc.pid(),
    start: () => proc.start(),
    stop: () => proc.stop(),
  };
  await m.start();
  return m;
}
