import type { CliContext, Command } from '../../protocol/cli.js';
import { printError } from '../../protocol/cli.js';
import { OutpostError } from '../../protocol/errors/index.js';

/**
 * The device's verbs. `outpost agent ...` and `outpost predict` reach here from the cloud CLI's
 * dispatcher; on a device that installs only the agent, `agent/cli/bin.ts` calls this directly.
 * Each verb is imported lazily so that `outpost predict` does not load the daemon's modules.
 */
const VERBS: Record<string, { load: () => Promise<Command>; help: string }> = {
  'agent run': { load: async () => (await import('./commands/run.js')).agentRun, help: 'run the agent daemon' },
  'agent status': {
    load: async () => (await import('./commands/status.js')).agentStatus,
    help: "show the local agent's models and state",
  },
  'agent check-config': {
    load: async () => (await import('./commands/check-config.js')).checkConfig,
    help: 'validate the agent config and print the effective settings',
  },
  'agent install-service': {
    load: async () => (await import('./commands/install-service.js')).installService,
    help: 'install the systemd units, user and config',
  },
  predict: {
    load: async () => (await import('./commands/predict.js')).predict,
    help: 'run a model on an image through the local agent',
  },
};

export function agentUsage(): string {
  const rows = Object.entries(VERBS).map(([verb, v]) => `  outpost ${verb.padEnd(22)} ${v.help}`);
  return ['Device verbs:', ...rows].join('\n') + '\n';
}

/** Runs a device verb; argv starts with the verb words (`agent run ...` or `predict ...`). */
export async function runAgentCli(argv: string[], ctx: CliContext): Promise<number> {
  const json = argv.includes('--json');
  const key = argv[0] === 'agent' ? `agent ${argv[1] ?? ''}` : (argv[0] ?? '');
  const verb = VERBS[key];
  const rest = argv.slice(argv[0] === 'agent' ? 2 : 1);
  if (!verb) {
    if (argv.length === 0 || argv.includes('--help') || argv.includes('-h')) {
      ctx.stdout.write(agentUsage());
      return 0;
    }
    return printError(
      ctx,
      json,
      new OutpostError('USAGE', `unknown verb "outpost ${argv.slice(0, 2).join(' ')}"\n${agentUsage()}`),
    );
  }
  let command: Command;
  try {
    command = await verb.load();
  } catch (err) {
    return printError(
      ctx,
      json,
      new OutpostError('INTERNAL', `outpost ${key} is not available in this build: ${(err as Error).message}`),
    );
  }
  try {
    return await command(rest, ctx);
  } catch (err) {
    return printError(ctx, json, err);
  }
}
