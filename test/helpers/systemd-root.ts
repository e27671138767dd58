import { execFile } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A root that holds just enough for `systemd-analyze verify --root`: verify loads the unit's
 * dependencies (default ones: sysinit, basic, shutdown targets; ours: network-online and
 * multi-user) and checks that every Exec binary exists and is executable. So the targets are
 * empty stand-ins and /usr/bin/outpost, /usr/bin/outpost-agent and /bin/kill are two-line scripts: verify never runs
 * them. Everything else in the unit (keys, values, types) is checked for real by systemd's own
 * parser. The host's unit directory is not used, so the result does not depend on the host.
 */
export async function fakeRoot(root: string): Promise<void> {
  const lib = join(root, 'usr/lib/systemd/system');
  await mkdir(lib, { recursive: true });
  for (const t of ['sysinit.target', 'basic.target', 'shutdown.target', 'network-online.target', 'multi-user.target']) {
    await writeFile(join(lib, t), `[Unit]\nDescription=stand-in for ${t}\n`);
  }
  for (const bin of ['usr/bin/outpost', 'usr/bin/outpost-agent', 'bin/kill']) {
    await mkdir(join(root, bin, '..'), { recursive: true });
    await writeFile(join(root, bin), '#!/bin/sh\nexit 0\n');
    await chmod(join(root, bin), 0o755);
  }
}

/** Runs verify; returns its lines that name an outpost file (warnings are errors here). */
export async function verify(root: string, files: string[]): Promise<string[]> {
  let out = '';
  try {
    const r = await run('systemd-analyze', ['verify', '--man=no', `--root=${root}`, ...files], { timeout: 60_000 });
    out = r.stdout + r.stderr;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    return [`exit != 0: ${e.message}`, ...(e.stdout ?? '').split('\n'), ...(e.stderr ?? '').split('\n')].filter(
      Boolean,
    );
  }
  return out.split('\n').filter((l) => l.includes('outpost'));
}
