import { access, constants } from 'node:fs/promises';
import { basename, delimiter, isAbsolute, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { printError, printResult, type CliContext, type Command } from '../../../protocol/cli.js';
import { OutpostError } from '../../../protocol/errors/index.js';
import { loadAgentConfig } from '../../config/load.js';
import { applyInstall, planInstall, systemdVersion, type InstallStep } from '../../system/install.js';

const HELP = `usage: outpost agent install-service [--config FILE] [--root DIR] [--dry-run] [--bin PATH]
                                     [--cloud] [--no-start] [--json]

Installs the agent as a systemd service: the unit (and, on systemd >= 254, a growing restart
delay), the outpost user and accelerator groups (sysusers.d), its directories (tmpfiles.d), and
FILE as /etc/outpost/agent.json (root:outpost 0640, validated first). Then it runs
systemd-sysusers, systemd-tmpfiles, systemctl daemon-reload and systemctl enable --now.

  --config FILE  agent config to install (default: keep the installed one)
  --root DIR     install into DIR instead of / (images, packaging): only offline steps run
  --dry-run      print every step and change nothing
  --bin PATH     the executable ExecStart runs (default: the outpost-agent or outpost running
                 this command, else outpost-agent on PATH, else /usr/bin/outpost-agent); with
                 --root, give its path inside that root
  --cloud        also install outpost-cloud.service (ExecStart: the outpost beside --bin)
  --no-start     enable for the next boot but do not start now
`;

async function findOnPath(name: string, env: NodeJS.ProcessEnv): Promise<string | null> {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!isAbsolute(dir)) continue;
    try {
      await access(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      /* next */
    }
  }
  return null;
}

/**
 * The installed executable this command runs from (npm's bin link, e.g. /usr/local/bin/outpost-agent),
 * so the unit starts exactly what the operator just ran. Not the resolved dist/ file: the link is
 * what survives an upgrade of the package.
 */
function runningExecutable(): string | null {
  const argv1 = process.argv[1];
  return argv1 && isAbsolute(argv1) && ['outpost-agent', 'outpost'].includes(basename(argv1)) ? argv1 : null;
}

function describe(s: InstallStep, dryRun: boolean): string {
  return s.kind === 'file'
    ? `${dryRun ? 'would write' : 'write'} ${s.path} (${'0' + s.mode.toString(8)}): ${s.why}`
    : `${dryRun ? 'would run' : 'run'}   ${s.argv.join(' ')}: ${s.why}`;
}

/** `outpost agent install-service`: see HELP. */
export const installService: Command = async (argv: string[], ctx: CliContext) => {
  let json = argv.includes('--json');
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string' },
        root: { type: 'string' },
        'dry-run': { type: 'boolean' },
        bin: { type: 'string' },
        cloud: { type: 'boolean' },
        'no-start': { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    });
    json = values.json === true;
    if (values.help) {
      ctx.stdout.write(HELP);
      return 0;
    }
    const root = resolve(ctx.cwd, values.root ?? '/');
    const dryRun = values['dry-run'] === true;
    const configFile = values.config === undefined ? undefined : resolve(ctx.cwd, values.config);
    // Refuse a bad config before touching anything: a unit that cannot start is worse than none.
    // The environment is not applied: at run time the unit's environment is what counts.
    if (configFile) await loadAgentConfig({ path: configFile, env: {} });
    if (values.bin !== undefined && !isAbsolute(values.bin)) {
      throw new OutpostError('USAGE', `--bin must be an absolute path (systemd needs one), got "${values.bin}"`, {
        flag: 'bin',
      });
    }
    const bin =
      values.bin ??
      runningExecutable() ??
      (root === '/' ? await findOnPath('outpost-agent', ctx.env) : null) ??
      '/usr/bin/outpost-agent';
    // Without --config an existing config is kept; with neither, the unit could only fail at start.
    if (
      !configFile &&
      !(await access(join(root, 'etc/outpost/agent.json')).then(
        () => true,
        () => false,
      ))
    ) {
      throw new OutpostError(
        'USAGE',
        `no agent config: ${join(root, 'etc/outpost/agent.json')} does not exist, so pass --config FILE`,
        { flag: 'config' },
      );
    }
    if (root === '/' && !dryRun && process.getuid?.() !== 0) {
      throw new OutpostError(
        'SERVICE_INSTALL_FAILED',
        'installing into / needs root: run it with sudo, or pass --root DIR or --dry-run',
        {},
      );
    }
    const steps = await planInstall({
      configFile,
      root,
      bin,
      cloud: values.cloud === true,
      start: values['no-start'] !== true,
      systemdVersion: await systemdVersion(),
    });
    const lines: string[] = [];
    if (!dryRun)
      await applyInstall(steps, (s) => {
        if (!json) ctx.stdout.write(describe(s, false) + '\n');
      });
    else lines.push(...steps.map((s) => describe(s, true)));
    const summary = steps.map((s) =>
      s.kind === 'file'
        ? { kind: s.kind, path: s.path, mode: s.mode, why: s.why }
        : { kind: s.kind, argv: s.argv, why: s.why },
    );
    if (!dryRun)
      lines.push(
        root === '/'
          ? 'installed; `systemctl status outpost-agent` shows it, `journalctl -u outpost-agent -o cat` its log'
          : `installed into ${root}`,
      );
    printResult(ctx, json, { dryRun, root, bin, steps: summary }, lines.join('\n'));
    return 0;
  } catch (err) {
    if (err instanceof TypeError && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      return printError(ctx, json, new OutpostError('USAGE', `${err.message}\n${HELP}`));
    }
    return printError(ctx, json, err);
  }
};
