import { cp, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FleetClient } from '../../cloud-broker/fleet/fleet-client.js';
import { cleanEnv, spawnCli, type CliRun } from './cli.js';

/**
 * Parts of the rollout tests (test/integration/rollout-fleet.test.ts): the cloud as a real child
 * process that can be SIGKILLed and started again on the same ports and data dir, and a copy of
 * the agent installed without its native addons (a device whose OpenCV backend is missing, as
 * after `npm ci` on a box without the OpenCV headers).
 */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

export interface CloudProcess {
  http: string;
  token: string;
  fleet: FleetClient;
  pid(): number;
  /** SIGKILL: no shutdown code runs, nothing is flushed. */
  kill(): Promise<void>;
  /** Starts it again on the same data dir and ports. */
  start(): Promise<void>;
  /** SIGTERM; resolves with its exit. */
  stop(): Promise<CliRun | null>;
  output(): string;
}

export interface CloudProcessOptions {
  /** Default: free ports picked here. */
  httpPort?: number;
  mqttPort?: number;
  /** More `cloud start` flags (--redis, --blob-dir, --public-http ...). */
  args?: string[];
  /** A `--database` URL (test/helpers/test-db.ts), else SQLite in the data dir. */
  database?: string;
  /** More environment (OUTPOST_CLOUD_LEASE_TTL_MS ...); the log level defaults to warn. */
  env?: Record<string, string>;
}

export async function cloudProcess(dataDir: string, home: string, o: CloudProcessOptions = {}): Promise<CloudProcess> {
  const httpPort = o.httpPort ?? (await freePort());
  const mqttPort = o.mqttPort ?? (await freePort());
  const http = `http://127.0.0.1:${httpPort}`;
  let child: ReturnType<typeof spawnCli> | null = null;
  let log = '';
  const c: CloudProcess = {
    http,
    token: '',
    fleet: new FleetClient({ url: http, token: '' }),
    pid: () => child?.pid ?? -1,
    async start() {
      child = spawnCli(
        [
          'cloud',
          'start',
          '--data-dir',
          dataDir,
          '--http-port',
          String(httpPort),
          '--mqtt-port',
          String(mqttPort),
          ...(o.database ? ['--database', o.database] : []),
          ...(o.args ?? []),
        ],
        { cwd: home, env: cleanEnv({ HOME: home, OUTPOST_LOG_LEVEL: 'warn', ...o.env }) },
      );
      const me = child;
      void me.done.then((r) => {
        log += r.stdout + r.stderr;
      });
      // Ready when the fleet answers (the broker and scheduler started), not when HTTP listens.
      for (let i = 0; ; i++) {
        if (i > 600) throw new Error(`the cloud did not start: ${log}`);
        const token = (await readFile(join(dataDir, 'admin.token'), 'utf8').catch(() => '')).trim();
        if (token) {
          const r = await fetch(`${http}/v1/rollouts`, { headers: { authorization: `Bearer ${token}` } }).catch(
            () => null,
          );
          if (r?.status === 200) {
            c.token = token;
            c.fleet = new FleetClient({ url: http, token });
            return;
          }
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async kill() {
      const me = child;
      child = null;
      if (!me) return;
      me.kill('SIGKILL');
      await me.done;
    },
    async stop() {
      const me = child;
      child = null;
      if (!me) return null;
      me.kill('SIGTERM');
      return me.done;
    },
    output: () => log,
  };
  await c.start();
  return c;
}

/** The agent's sources and package.json copied under `dir`, without build/ (so without addons). */
export async function agentWithoutAddons(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  await cp(join(ROOT, 'agent'), join(dir, 'agent'), { recursive: true });
  await cp(join(ROOT, 'protocol'), join(dir, 'protocol'), { recursive: true });
  await writeFile(join(dir, 'package.json'), await readFile(join(ROOT, 'package.json')));
  await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  return join(dir, 'agent/cli/bin.ts');
}
