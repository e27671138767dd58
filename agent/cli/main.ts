import type { CliContext, Command } from '../../protocol/cli.js';
import { packageInfo } from '../system/package-root.js';

/**
 * A usage or load error, printed with its catalog code. The catalog (every code's message and
 * exit status) loads only here and in the verbs, never for --help or --version.
 */
async function fail(ctx: CliContext, json: boolean, code: 'USAGE' | 'INTERNAL', message: string): Promise<number> {
  const [{ printError }, { OutpostError }] = await Promise.all([
    import('../../protocol/cli.js'),
    import('../../protocol/errors/index.js'),
  ]);
  return printError(ctx, json, new OutpostError(code, message));
}

/**
 * The device's verbs. `outpost-agent <verb>` (agent/cli/bin.ts, the device package's bin) and
 * `outpost agent <verb>` / `outpost predict` (the cloud CLI's dispatcher) both reach here; a
 * leading `agent` word is accepted so that both spellings run the same code. Each verb is
 * imported lazily so that `--help` and `predict` do not load the daemon's modules.
 */
const VERBS: Record<string, { load: () => Promise<Command>; help: string }> = {
  run: {
    load: async () => (await import('./commands/run.js')).agentRun,
    help: 'run the agent daemon (systemd runs it)',
  },
  status: {
    load: async () => (await import('./commands/status.js')).agentStatus,
    help: "show the local agent's models and state",
  },
  'check-config': {
    load: async () => (await import('./commands/check-config.js')).checkConfig,
    help: 'validate the agent config and print the effective settings',
  },
  'install-service': {
    load: async () => (await import('./commands/install-service.js')).installService,
    help: 'install the systemd units, user and config',
  },
  predict: {
    load: async () => (await import('./commands/predict.js')).predict,
    help: 'run a model on an image through the local agent',
  },
};

export function agentUsage(program = 'outpost-agent'): string {
  const rows = Object.entries(VERBS).map(([verb, v]) => `  ${program} ${verb.padEnd(16)} ${v.help}`);
  return [
    `usage: ${program} <verb> [flags]   (every verb takes --help)`,
    '',
    ...rows,
    `  ${program} --version        print the agent's version`,
    '',
  ].join('\n');
}

/** Runs a device verb; argv starts with the verb (`run ...`), optionally after the word `agent`. */
export async function runAgentCli(argv: string[], ctx: CliContext): Promise<number> {
  const json = argv.includes('--json');
  const words = argv[0] === 'agent' ? argv.slice(1) : argv;
  const program = argv[0] === 'agent' ? 'outpost agent' : 'outpost-agent';
  const key = words[0] ?? '';
  if (key === '--version' || key === '-V') {
    ctx.stdout.write(`${packageInfo().version}\n`);
    return 0;
  }
  const verb = Object.hasOwn(VERBS, key) ? VERBS[key] : undefined;
  if (!verb) {
    if (words.length === 0 || key === '--help' || key === '-h' || key === 'help') {
      ctx.stdout.write(agentUsage(program));
      return words.length === 0 ? 2 : 0;
    }
    return fail(ctx, json, 'USAGE', `unknown verb "${program} ${key}"\n${agentUsage(program)}`);
  }
  let command: Command;
  try {
    command = await verb.load();
  } catch (err) {
    return fail(ctx, json, 'INTERNAL', `${program} ${key} is not available in this build: ${(err as Error).message}`);
  }
  try {
    return await command(words.slice(1), ctx);
  } catch (err) {
    const { printError } = await import('../../protocol/cli.js');
    return printError(ctx, json, err);
  }
}
