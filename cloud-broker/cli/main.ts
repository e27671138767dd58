import { pathToFileURL } from 'node:url';
import type { CliContext, Command } from '../../protocol/cli.js';
import type { ErrorCode } from '../../protocol/errors/index.js';

/**
 * Prints an error with its catalog code. The catalog (and everything that prints errors) loads
 * only when one is printed or a verb runs: `outpost --help` needs none of it (docs/systemd.md,
 * Footprint).
 */
async function printError(ctx: CliContext, json: boolean, err: unknown): Promise<number> {
  return (await import('../../protocol/cli.js')).printError(ctx, json, err);
}
async function fail(
  ctx: CliContext,
  json: boolean,
  code: ErrorCode,
  message: string,
  details?: Record<string, unknown>,
): Promise<number> {
  const { OutpostError } = await import('../../protocol/errors/index.js');
  return printError(ctx, json, new OutpostError(code, message, details));
}

/**
 * The `outpost` dispatcher. Verbs are looked up by their words (`model configure`,
 * `app models add`) and imported lazily, so `outpost model configure` never loads the HTTP
 * client and a verb whose module is missing fails alone with CLI_VERB_UNAVAILABLE.
 */
interface Verb {
  load: () => Promise<Command>;
  help: string;
}

const DEVELOPER_VERBS: Record<string, Verb> = {
  'model configure': {
    load: async () => (await import('./commands/model-configure.js')).modelConfigure,
    help: 'write alwaysai.model.json in this model folder',
  },
  'model publish': {
    load: async () => (await import('./commands/model-publish.js')).modelPublish,
    help: 'upload this model folder as a new version',
  },
  'model list': {
    load: async () => (await import('./commands/model-query.js')).modelList,
    help: 'list the models you can see',
  },
  'model show': {
    load: async () => (await import('./commands/model-query.js')).modelShow,
    help: 'show a model version: manifest and files',
  },
  'model versions': {
    load: async () => (await import('./commands/model-query.js')).modelVersions,
    help: "list a model's versions",
  },
  'app models add': {
    load: async () => (await import('./commands/app-models.js')).appModelsAdd,
    help: 'add a model (owner/name[@version]) to this app',
  },
  'app models remove': {
    load: async () => (await import('./commands/app-models.js')).appModelsRemove,
    help: 'remove a model from this app',
  },
  'app models show': {
    load: async () => (await import('./commands/app-models.js')).appModelsShow,
    help: "show this app's models",
  },
  'app models sync': {
    load: async () => (await import('./commands/app-models.js')).appModelsSync,
    help: "replace this app's models with the catalog's list",
  },
  'app install': {
    load: async () => (await import('./commands/app-install.js')).appInstall,
    help: "download this app's models into ./models",
  },
};

const CLOUD_VERBS: Record<string, Verb> = {
  'cloud start': {
    load: async () => (await import('./commands/cloud.js')).cloudStart,
    help: 'run the cloud (catalog, blobs, broker) in this process',
  },
  demo: {
    load: async () => (await import('./commands/demo.js')).demo,
    help: 'the quickstart: cloud + agent + a generated model, ending in a real prediction',
  },
  'user create': {
    load: async () => (await import('./commands/user.js')).userCreate,
    help: 'create a user and print its token (admin)',
  },
  'user whoami': {
    load: async () => (await import('./commands/user.js')).userWhoami,
    help: 'show whom the token belongs to',
  },
};

/**
 * Fleet verbs (device provision|list|show, deploy, rollout status, rollback) are added here by
 * their owners, one line each, in the same shape as above.
 */
const FLEET_VERBS: Record<string, Verb> = {
  'device provision': {
    load: async () => (await import('./commands/device.js')).deviceProvision,
    help: 'register a device and write its agent.json',
  },
  'device list': {
    load: async () => (await import('./commands/device.js')).deviceList,
    help: 'list devices, tags, status',
  },
  'device show': {
    load: async () => (await import('./commands/device.js')).deviceShow,
    help: "show a device's desired and reported state",
  },
  'device tag': {
    load: async () => (await import('./commands/device.js')).deviceTag,
    help: 'add or remove tags of a device',
  },
  'device remove': {
    load: async () => (await import('./commands/device.js')).deviceRemove,
    help: 'remove a device and revoke its credentials',
  },
  deploy: {
    load: async () => (await import('./commands/deploy.js')).deploy,
    help: 'set a model version (or an app) on a device, tag or all',
  },
  'rollout status': {
    load: async () => (await import('./commands/rollout.js')).rolloutStatus,
    help: 'desired vs reported versions per device; with <id>, one staged rollout',
  },
  'rollout list': {
    load: async () => (await import('./commands/rollout.js')).rolloutList,
    help: 'staged rollouts: state, batch, device counts',
  },
  'rollout pause': {
    load: async () => (await import('./commands/rollout.js')).rolloutPause,
    help: 'stop sending batches of a rollout',
  },
  'rollout resume': {
    load: async () => (await import('./commands/rollout.js')).rolloutResume,
    help: 'continue a paused rollout',
  },
  'rollout abort': {
    load: async () => (await import('./commands/rollout.js')).rolloutAbort,
    help: 'end a rollout and send its devices back (--keep: leave them)',
  },
  plan: {
    load: async () => (await import('./commands/plan.js')).plan,
    help: 'what a deploy would do per device; changes nothing',
  },
  audit: {
    load: async () => (await import('./commands/audit.js')).audit,
    help: 'who changed what in the fleet, and when',
  },
  rollback: {
    load: async () => (await import('./commands/rollback.js')).rollback,
    help: 'go back to the previous version on a target',
  },
  'device command': {
    load: async () => (await import('./commands/device-command.js')).deviceCommand,
    help: 'send a signed sync, rollback, report or telemetry command to a device',
  },
  'keys init': {
    load: async () => (await import('./commands/keys.js')).keysInit,
    help: 'create the root keys (k of n, kept offline) and the first root',
  },
  'keys show': {
    load: async () => (await import('./commands/keys.js')).keysShow,
    help: 'show the root of trust, its online key and revoked keys',
  },
  'keys rotate-online': {
    load: async () => (await import('./commands/keys.js')).keysRotateOnline,
    help: 'replace the online signing key (needs root keys)',
  },
  'keys rotate-root': {
    load: async () => (await import('./commands/keys.js')).keysRotateRoot,
    help: 'replace the root keys (old threshold + new keys sign)',
  },
  'keys revoke': {
    load: async () => (await import('./commands/keys.js')).keysRevoke,
    help: 'revoke a root or online key',
  },
};

const VERBS: Record<string, Verb> = { ...DEVELOPER_VERBS, ...CLOUD_VERBS, ...FLEET_VERBS };

/** Device verbs live in agent/cli (the agent never imports this package, only the reverse). */
const DEVICE_GROUPS = new Set(['agent', 'predict']);
// A computed specifier: the device CLI may be absent from a cloud-only install, and tsc must not
// require it to exist.
const AGENT_CLI = '../../agent/cli/main.js';

export function usage(): string {
  const rows = (t: Record<string, Verb>) => Object.entries(t).map(([k, v]) => `  outpost ${k.padEnd(20)} ${v.help}`);
  return (
    [
      'usage: outpost <group> <verb> [flags]   (every verb takes --help; all but agent run take --json)',
      '',
      'Model developers:',
      ...rows(DEVELOPER_VERBS),
      '',
      'Cloud:',
      ...rows(CLOUD_VERBS),
      ...(Object.keys(FLEET_VERBS).length ? ['', 'Fleet:', ...rows(FLEET_VERBS)] : []),
      // Listed here, not imported: the dispatcher must not load the agent's modules for --help.
      '',
      'Device (run on the device):',
      '  outpost agent run            run the agent daemon (systemd runs it)',
      "  outpost agent status         show the local agent's models and state",
      '  outpost agent check-config   validate the agent config',
      '  outpost agent install-service  install the systemd units, user and config',
      '  outpost predict              run a model on an image through the local agent',
      '',
      'Exit codes: 0 ok, 1 failure, 2 usage, 3 invalid input, 4 not found, 5 auth, 6 conflict,',
      '7 unavailable, 8 integrity, 9 incompatible. See docs/cli.md and docs/errors.md.',
    ].join('\n') + '\n'
  );
}

/** Finds the longest run of leading words that names a verb (3, 2, then 1 word). */
function lookup(argv: string[]): { key: string; rest: string[] } | undefined {
  for (let n = Math.min(3, argv.length); n >= 1; n--) {
    const key = argv.slice(0, n).join(' ');
    if (Object.hasOwn(VERBS, key)) return { key, rest: argv.slice(n) };
  }
  return undefined;
}

export async function runCli(argv: string[], ctx: CliContext): Promise<number> {
  const json = argv.includes('--json');
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    ctx.stdout.write(usage());
    return argv.length === 0 ? 2 : 0;
  }
  if (argv[0] === '--version' || argv[0] === '-V') {
    const { packageInfo } = await import('../../agent/system/package-root.js');
    ctx.stdout.write(`${packageInfo().version}\n`);
    return 0;
  }
  if (DEVICE_GROUPS.has(argv[0])) {
    let mod: { runAgentCli: (argv: string[], ctx: CliContext) => Promise<number> };
    try {
      mod = (await import(AGENT_CLI)) as typeof mod;
    } catch (err) {
      return fail(
        ctx,
        json,
        'CLI_VERB_UNAVAILABLE',
        `the device verbs (outpost ${argv[0]} ...) are not available in this installation: ${(err as Error).message}`,
      );
    }
    return mod.runAgentCli(argv, ctx);
  }
  const found = lookup(argv);
  if (!found) {
    const group = argv[0];
    const verbs = Object.keys(VERBS).filter((k) => k.startsWith(group + ' '));
    const hint = verbs.length
      ? `verbs of "${group}": ${verbs.join(', ')}`
      : 'run `outpost --help` for the list of verbs';
    if (verbs.length && argv.slice(1).some((a) => a === '--help' || a === '-h')) {
      ctx.stdout.write(verbs.map((k) => `  outpost ${k.padEnd(20)} ${VERBS[k].help}`).join('\n') + '\n');
      return 0;
    }
    const words = argv
      .filter((a) => !a.startsWith('-'))
      .slice(0, 3)
      .join(' ');
    return fail(ctx, json, 'USAGE', `unknown verb "outpost ${words}"; ${hint}`, { verb: words });
  }
  let command: Command;
  try {
    command = await VERBS[found.key].load();
  } catch (err) {
    return fail(
      ctx,
      json,
      'CLI_VERB_UNAVAILABLE',
      `outpost ${found.key} is not available in this installation: ${(err as Error).message}`,
    );
  }
  try {
    return await command(found.rest, ctx);
  } catch (err) {
    return printError(ctx, json, err);
  }
}

/** Runs the CLI on this process: argv, env, stdio; SIGINT/SIGTERM abort ctx.signal once. */
export async function main(argv = process.argv.slice(2)): Promise<void> {
  const ac = new AbortController();
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) process.exit(sig === 'SIGINT' ? 130 : 143);
    interrupted = true;
    // A verb is running, so the catalog is loaded: this import settles at once.
    void import('../../protocol/errors/index.js').then(({ OutpostError }) =>
      ac.abort(new OutpostError('INTERNAL', `interrupted by ${sig}`)),
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const code = await runCli(argv, {
    cwd: process.cwd(),
    env: process.env,
    stdout: process.stdout,
    stderr: process.stderr,
    signal: ac.signal,
  });
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  process.exitCode = code;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main();
}
