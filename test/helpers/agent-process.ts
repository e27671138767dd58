import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The real agent as a child process (`node --import tsx agent/cli/bin.ts agent run --config ...`),
 * for tests that must kill it for real (kill -9 leaves no finally blocks, no flushed buffers, no
 * goodbye to the broker). Its pino log lines are kept so that a failing test can show them.
 */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
export const AGENT_BIN = join(ROOT, 'agent/cli/bin.ts');

export interface AgentProcess {
  pid: number;
  child: ChildProcess;
  /** Resolves when the process is gone (code, or the signal that ended it). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** stdout + stderr so far (pino JSON lines). */
  output(): string;
  /** SIGKILL by default; resolves once the process is gone. */
  kill(sig?: NodeJS.Signals): Promise<void>;
}

/**
 * Writes a test agent config: the provisioned agent.json plus short reconnect intervals, no
 * telemetry, no free-space margin, and the given models folder and socket.
 */
export async function writeAgentConfig(
  provisioned: string,
  out: string,
  o: { modelsDir: string; socket: string; extra?: Record<string, unknown> },
): Promise<string> {
  const base = JSON.parse(await readFile(provisioned, 'utf8')) as Record<string, unknown>;
  const cfg = {
    ...base,
    modelsDir: o.modelsDir,
    socket: o.socket,
    keepVersions: 2,
    telemetry: { enabled: false, intervalSeconds: 60 },
    mqtt: { keepaliveSeconds: 30, reconnectMinMs: 100, reconnectMaxMs: 1000, maxQueued: 1000 },
    download: { parallel: 4, minFreeBytes: 0, retries: 5 },
    log: { level: 'info' },
    ...o.extra,
  };
  await writeFile(out, JSON.stringify(cfg, null, 2));
  return out;
}

/** `bin`: another copy of the agent's entry point (e.g. one installed without the native addons). */
export function spawnAgent(configPath: string, opts: { env?: NodeJS.ProcessEnv; bin?: string } = {}): AgentProcess {
  const env: NodeJS.ProcessEnv = {};
  // No OUTPOST_* from the developer's shell: the config file alone decides.
  for (const [k, v] of Object.entries(opts.env ?? process.env)) if (!k.startsWith('OUTPOST_')) env[k] = v;
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', opts.bin ?? AGENT_BIN, 'agent', 'run', '--config', configPath],
    {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const chunks: Buffer[] = [];
  child.stdout!.on('data', (c: Buffer) => chunks.push(c));
  child.stderr!.on('data', (c: Buffer) => chunks.push(c));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return {
    pid: child.pid!,
    child,
    exited,
    output: () => Buffer.concat(chunks).toString('utf8'),
    async kill(sig = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(sig);
      await exited;
    },
  };
}
