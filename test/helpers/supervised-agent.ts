import { afterEach } from 'vitest';
import { agentEnv, notifyReceiver, spawnAgent, type AgentProcess, type NotifyReceiver } from './daemon-process.js';

export interface SupervisedAgent {
  agent: AgentProcess;
  /** The NOTIFY_SOCKET the agent reports to, as systemd's would. */
  rx: NotifyReceiver;
}

export interface SupervisedStart {
  /** Folder for the notify socket. */
  dir: string;
  config: string;
  /** Extra environment on top of agentEnv() and NOTIFY_SOCKET (e.g. WATCHDOG_USEC). */
  env?: Record<string, string | undefined>;
  args?: string[];
}

/**
 * `outpost agent run` as a real child process under a notify receiver, the way systemd runs it.
 * Every agent started through the returned function is SIGKILLed, and its receiver closed, after
 * each test, so a failing test never leaves a daemon behind for the next one.
 */
export function useSupervisedAgents(): (o: SupervisedStart) => SupervisedAgent {
  const started: SupervisedAgent[] = [];
  afterEach(async () => {
    for (const s of started.splice(0)) {
      await s.agent.kill();
      s.rx.close();
    }
  });
  return (o) => {
    const rx = notifyReceiver(o.dir);
    const agent = spawnAgent({ config: o.config, args: o.args, env: agentEnv({ NOTIFY_SOCKET: rx.path, ...o.env }) });
    started.push({ agent, rx });
    return { agent, rx };
  };
}
