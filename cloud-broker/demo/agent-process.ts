import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { OutpostError } from '../../protocol/errors/index.js';
import { AgentClient } from '../../agent/client/index.js';

/**
 * The demo's device: `outpost-agent run` in a child process, the same daemon systemd starts
 * (ExecStart runs the same verb). Built (dist/cloud-broker/demo/), this is the compiled
 * dist/agent/cli/bin.js run by plain node. Only when the demo itself runs from the TypeScript
 * sources (tests under tsx) is the child started through tsx too: there is no .js to run then.
 * Its pino lines go to a log file so the demo's own output stays short, and the file is there to
 * read when something fails.
 */
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const AGENT_BIN = fileURLToPath(new URL(`../../agent/cli/bin.${FROM_SOURCE ? 'ts' : 'js'}`, import.meta.url));
const NODE_ARGS = FROM_SOURCE ? ['--import', 'tsx', AGENT_BIN] : [AGENT_BIN];
/** The agent's stop deadline is 25 s (agent/cli/commands/run.ts); past that, it is stuck. */
const STOP_WAIT_MS = 30_000;

export interface AgentProcessOptions {
  config: string;
  modelsDir: string;
  socket: string;
  logFile: string;
  /** The demo's environment; OUTPOST_* and systemd's variables are removed before the spawn. */
  env: NodeJS.ProcessEnv;
}

export interface AgentProcess {
  readonly pid: number;
  readonly logFile: string;
  readonly client: AgentClient;
  /** Null while it runs; then its exit code (or the signal's name). */
  exitStatus(): string | null;
  /** Resolves once the socket answers /v2/health/live; fails if the process ends first. */
  waitLive(timeoutMs: number, signal: AbortSignal): Promise<void>;
  /** Throws DEMO_AGENT_EXITED if the process has ended. */
  assertRunning(): Promise<void>;
  /** SIGTERM, then wait for the exit (SIGKILL after STOP_WAIT_MS); resolves with the exit code. */
  stop(): Promise<number | null>;
}

export function agentEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) {
    // The user's OUTPOST_* (a real device's config, socket...) must not leak into the demo agent,
    // and a demo run from inside a systemd unit must not speak to that unit's notify socket.
    if (!k.startsWith('OUTPOST_') && k !== 'NOTIFY_SOCKET' && !k.startsWith('WATCHDOG_')) out[k] = v;
  }
  return out;
}

export function startAgentProcess(o: AgentProcessOptions): AgentProcess {
  const fd = openSync(o.logFile, 'a', 0o600);
  const child = spawn(
    process.execPath,
    [...NODE_ARGS, 'run', '--config', o.config, '--models-dir', o.modelsDir, '--socket', o.socket],
    {
      env: agentEnv(o.env),
      stdio: ['ignore', fd, fd],
    },
  );
  closeSync(fd);
  let status: string | null = null;
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code, sig) => {
      status = code !== null ? `exit code ${code}` : `signal ${sig}`;
      process.off('exit', killOnExit);
      resolve(code);
    });
    child.once('error', (err) => {
      status = `spawn error: ${err.message}`;
      resolve(null);
    });
  });
  // If the demo itself dies (an uncaught error), do not leave an orphan agent behind.
  const killOnExit = (): void => {
    child.kill('SIGKILL');
  };
  process.on('exit', killOnExit);
  const client = new AgentClient({ socket: o.socket });

  const died = async (): Promise<OutpostError> => {
    const tail = (await readFile(o.logFile, 'utf8').catch(() => '')).trim().split('\n').slice(-8).join('\n');
    return new OutpostError(
      'DEMO_AGENT_EXITED',
      `the agent process ended (${status}) before the demo finished; last lines of ${o.logFile}:\n${tail}`,
      { logFile: o.logFile, status },
    );
  };

  return {
    pid: child.pid ?? -1,
    logFile: o.logFile,
    client,
    exitStatus: () => status,
    async waitLive(timeoutMs, signal) {
      const deadline = Date.now() + timeoutMs;
      let last = 'no answer yet';
      for (;;) {
        if (status !== null) throw await died();
        signal.throwIfAborted();
        try {
          if ((await client.health()).live) return;
        } catch (err) {
          last = (err as Error).message;
        }
        if (Date.now() > deadline) {
          throw new OutpostError(
            'DEMO_TIMEOUT',
            `the agent's socket ${o.socket} did not answer within ${timeoutMs / 1000} s (last: ${last}); see ${o.logFile}`,
            { step: 'agent live', socket: o.socket },
          );
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async assertRunning() {
      if (status !== null) throw await died();
    },
    async stop() {
      if (status === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_WAIT_MS);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
