import { execFile } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { OutpostError } from '../../protocol/errors/index.js';
import { writeFileAtomic } from '../fs/atomic-file.js';
import { packageInfo } from './package-root.js';

const run = promisify(execFile);

/** The unit files and snippets shipped in systemd/ at the package's root (repository or tarball). */
export const SYSTEMD_SOURCE_DIR = join(packageInfo().root, 'systemd');
/** RestartSteps= / RestartMaxDelaySec= exist from this systemd version on. */
export const RESTART_STEPS_SINCE = 254;

export interface InstallOptions {
  /** Validated agent config file to install as /etc/outpost/agent.json; omitted keeps the current one. */
  configFile?: string;
  /** Install under this directory instead of / (packaging, tests): no live systemctl steps. */
  root: string;
  /** The executable the agent unit starts: outpost-agent, or the cloud package's outpost. */
  bin: string;
  /** Also install outpost-cloud.service (servers). */
  cloud: boolean;
  /** Start the agent now (else only enable it for the next boot). */
  start: boolean;
  /** systemd's version on the target, for the restart-backoff drop-in (null: unknown, skip it). */
  systemdVersion: number | null;
}

export type InstallStep =
  | { kind: 'file'; path: string; mode: number; content: string; why: string }
  | { kind: 'command'; argv: string[]; why: string };

/** Reads "systemd 252 (252.39-1~deb12u2)" from `systemctl --version`; null when unavailable. */
export async function systemdVersion(): Promise<number | null> {
  try {
    const { stdout } = await run('systemctl', ['--version'], { timeout: 10_000 });
    const m = /^systemd (\d+)/.exec(stdout);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

async function source(name: string): Promise<string> {
  return readFile(join(SYSTEMD_SOURCE_DIR, name), 'utf8');
}

/**
 * The shipped units say /usr/bin/outpost-agent and /usr/bin/outpost; npm's global prefix differs
 * between distributions, so ExecStart gets the executable actually installed. The cloud package's
 * `outpost` runs the agent as `outpost agent run`; the cloud unit uses the `outpost` beside the
 * agent's executable (both packages install their bins into the same prefix).
 */
function agentExec(bin: string): string {
  return basename(bin) === 'outpost' ? `${bin} agent` : bin;
}
function cloudExec(bin: string): string {
  return basename(bin) === 'outpost' ? bin : join(dirname(bin), 'outpost');
}
function withExec(unit: string, shipped: string, exec: string): string {
  return unit.replace(new RegExp(`^(ExecStart=)${shipped}(?= )`, 'gm'), `$1${exec}`);
}

/**
 * The install as data: files to write, then commands to run, each with its reason. Pure apart
 * from reading the shipped files, so --dry-run prints exactly what a real run does.
 */
export async function planInstall(o: InstallOptions): Promise<InstallStep[]> {
  const live = o.root === '/';
  const at = (p: string): string => join(o.root, p);
  const rootFlag = live ? [] : [`--root=${o.root}`];
  const steps: InstallStep[] = [
    {
      kind: 'file',
      path: at('/etc/systemd/system/outpost-agent.service'),
      mode: 0o644,
      content: withExec(await source('outpost-agent.service'), '/usr/bin/outpost-agent', agentExec(o.bin)),
      why: 'the agent unit',
    },
    {
      kind: 'file',
      path: at('/etc/sysusers.d/outpost.conf'),
      mode: 0o644,
      content: await source('outpost.sysusers.conf'),
      why: 'the outpost users and the accelerator groups',
    },
    {
      kind: 'file',
      path: at('/etc/tmpfiles.d/outpost.conf'),
      mode: 0o644,
      content: await source('outpost.tmpfiles.conf'),
      why: "directories and the config file's owner and mode",
    },
  ];
  if (o.systemdVersion !== null && o.systemdVersion >= RESTART_STEPS_SINCE) {
    steps.push({
      kind: 'file',
      path: at('/etc/systemd/system/outpost-agent.service.d/10-restart-backoff.conf'),
      mode: 0o644,
      content: await source('restart-backoff.conf'),
      why: `growing restart delay (systemd ${o.systemdVersion} >= ${RESTART_STEPS_SINCE})`,
    });
  }
  if (o.cloud) {
    steps.push({
      kind: 'file',
      path: at('/etc/systemd/system/outpost-cloud.service'),
      mode: 0o644,
      content: withExec(await source('outpost-cloud.service'), '/usr/bin/outpost', cloudExec(o.bin)),
      why: 'the cloud unit',
    });
  }
  if (o.configFile) {
    // 0640 now; tmpfiles' "z" line then gives it group outpost once sysusers made the group.
    steps.push({
      kind: 'file',
      path: at('/etc/outpost/agent.json'),
      mode: 0o640,
      content: await readFile(o.configFile, 'utf8'),
      why: `the agent config from ${o.configFile}`,
    });
  }
  steps.push(
    { kind: 'command', argv: ['systemd-sysusers', ...rootFlag, 'outpost.conf'], why: 'create the users and groups' },
    {
      kind: 'command',
      argv: ['systemd-tmpfiles', ...rootFlag, '--create', 'outpost.conf'],
      why: 'create /etc/outpost and /var/lib/outpost with their owners; agent.json becomes root:outpost 0640',
    },
  );
  const units = ['outpost-agent.service', ...(o.cloud ? ['outpost-cloud.service'] : [])];
  if (live) {
    steps.push({ kind: 'command', argv: ['systemctl', 'daemon-reload'], why: 'make systemd read the new units' });
    steps.push({
      kind: 'command',
      argv: ['systemctl', 'enable', ...(o.start ? ['--now'] : []), ...units],
      why: o.start ? 'start now and at every boot' : 'start at every boot',
    });
  } else {
    // Offline root: enabling only creates the wants/ symlinks; nothing can be started.
    steps.push({
      kind: 'command',
      argv: ['systemctl', ...rootFlag, 'enable', ...units],
      why: 'start at every boot of that root',
    });
  }
  return steps;
}

/** Carries out the plan in order; stops at the first failure with SERVICE_INSTALL_FAILED. */
export async function applyInstall(steps: InstallStep[], onStep: (s: InstallStep) => void = () => {}): Promise<void> {
  for (const s of steps) {
    onStep(s);
    if (s.kind === 'file') {
      try {
        await mkdir(dirname(s.path), { recursive: true });
        await writeFileAtomic(s.path, s.content, { mode: s.mode });
      } catch (err) {
        throw new OutpostError(
          'SERVICE_INSTALL_FAILED',
          `cannot write ${s.path}: ${(err as Error).message} (run as root, or use --root DIR)`,
          { path: s.path },
          { cause: err },
        );
      }
    } else {
      try {
        await run(s.argv[0], s.argv.slice(1), { timeout: 120_000 });
      } catch (err) {
        const e = err as Error & { stderr?: string };
        const why = (e.stderr || e.message).trim().split('\n').slice(-3).join(' / ');
        throw new OutpostError(
          'SERVICE_INSTALL_FAILED',
          `\`${s.argv.join(' ')}\` failed: ${why}`,
          { argv: s.argv },
          { cause: err },
        );
      }
    }
  }
}
