import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { addMosquittoUser, writeMosquittoFiles, type MosquittoFiles } from '../../cloud-broker/broker/mosquitto.js';
import { closedPort } from './daemon-process.js';
import { missingCommand } from './requires.js';

/** Why Debian's mosquitto cannot run here, or null. `mosquitto -h` exits non-zero, so look the binaries up. */
export function missingMosquitto(): string | null {
  return missingCommand('sh', ['-c', 'command -v mosquitto && command -v mosquitto_passwd']);
}

/** A real mosquitto 2 child with the fleet's generated config, password file and ACL. */
export interface Mosquitto {
  readonly port: number;
  readonly files: MosquittoFiles;
  /** What startFleetServices takes as `externalBroker` (the cloud's service user). */
  readonly externalBroker: { url: string; username: string; password: string };
  /**
   * Adds a login and sends SIGHUP so that mosquitto re-reads its password file. The reload is
   * asynchronous: a client may be refused for a moment after this returns.
   */
  addUser(username: string, password: string): Promise<void>;
  /** Starts it again on the same port and files (after stop()); resolves once it listens. */
  start(): Promise<void>;
  /** SIGTERM, resolved when it has exited (no-op when not running). */
  stop(): Promise<void>;
}

async function listening(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/** One mosquitto child on `conf`, started and stopped by PID; `pid()` is undefined when not running. */
export interface MosquittoProcess {
  start(): Promise<void>;
  stop(): Promise<void>;
  pid(): number | undefined;
  signal(sig: NodeJS.Signals): void;
}

export function mosquittoProcess(conf: string, port: number): MosquittoProcess {
  let child: ChildProcess | undefined;
  const alive = (c: ChildProcess | undefined): c is ChildProcess =>
    c !== undefined && c.exitCode === null && c.signalCode === null;
  return {
    pid: () => (alive(child) ? child.pid : undefined),
    signal: (sig) => {
      if (alive(child)) child.kill(sig);
    },
    async start() {
      const c = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'inherit'] });
      child = c;
      const deadline = Date.now() + 10_000;
      while (!(await listening(port))) {
        if (c.exitCode !== null) throw new Error(`mosquitto exited with ${c.exitCode} before listening on ${port}`);
        if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port} within 10 s`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async stop() {
      const c = child;
      if (!alive(c)) return;
      const gone = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      await gone;
    },
  };
}

/** Writes the config under `dir`/mosquitto, picks a free port and starts mosquitto on it. */
export async function startMosquitto(dir: string): Promise<Mosquitto> {
  const port = await closedPort();
  const service = { username: 'outpost-cloud', password: 'svc-' + Math.random().toString(36).slice(2) };
  // Under root mosquitto drops to this user, who must be able to read the 0600 files it wrote.
  const files = await writeMosquittoFiles(join(dir, 'mosquitto'), {
    host: '127.0.0.1',
    port,
    service,
    user: os.userInfo().username,
  });
  const proc = mosquittoProcess(files.conf, port);
  const m: Mosquitto = {
    port,
    files,
    externalBroker: { url: `mqtt://127.0.0.1:${port}`, ...service },
    async addUser(username, password) {
      await addMosquittoUser(files.passwordFile, username, password);
      proc.signal('SIGHUP');
    },
    start: () => proc.start(),
    stop: () => proc.stop(),
  };
  await m.start();
  return m;
}
