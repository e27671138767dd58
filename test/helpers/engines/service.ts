import { type ChildProcess, spawn, type SpawnOptions } from 'node:child_process';
import net from 'node:net';

/**
 * A Debian engine (PostgreSQL, Redis, haproxy, nginx) started by a test on loopback: the child is
 * the server itself (never a shell or runuser in between), so its PID is the one stopped.
 */
export interface ServiceProcess {
  readonly name: string;
  readonly pid: number;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. No-op when gone. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL, as a crash would; resolves once the process has exited. */
  kill(): Promise<void>;
  readonly exited: boolean;
}

export async function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const s = net.connect(port, host, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

function waitExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}

/**
 * Spawns `cmd` and resolves once `port` accepts connections. The child's stderr is kept (last 4 KiB)
 * and quoted when it exits early or does not listen within `timeoutMs`, so a failed start says why.
 */
export async function startService(
  name: string,
  cmd: string,
  args: string[],
  port: number,
  opts: SpawnOptions & { timeoutMs?: number } = {},
): Promise<ServiceProcess> {
  const { timeoutMs = 20_000, ...spawnOpts } = opts;
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], ...spawnOpts });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-4096);
  });
  const spawnError = new Promise<Error>((r) => child.once('error', r));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const failed = await Promise.race([spawnError, new Promise<null>((r) => setTimeout(() => r(null), 25))]);
    if (failed) throw new Error(`${name}: could not start ${cmd}: ${failed.message}`);
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before listening on ${port}: ${stderr}`);
    if (await portOpen(port)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await waitExit(child);
      throw new Error(`${name} did not listen on ${port} within ${timeoutMs} ms: ${stderr}`);
    }
  }
  return {
    name,
    pid: child.pid!,
    get exited() {
      return child.exitCode !== null || child.signalCode !== null;
    },
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = waitExit(child);
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await gone;
      clearTimeout(timer);
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = waitExit(child);
      child.kill('SIGKILL');
      await gone;
    },
  };
}
