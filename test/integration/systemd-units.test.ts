import { generateKeyPairSync } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, readlink, rm, stat, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installService } from '../../agent/cli/commands/install-service.js';
import { RESTART_STEPS_SINCE, SYSTEMD_SOURCE_DIR, planInstall, systemdVersion } from '../../agent/system/install.js';
import { missingCommand, skipForPackage } from '../helpers/requires.js';
import { capturedContext, type CapturedContext } from '../helpers/cli-context.js';
import { fakeRoot, verify } from '../helpers/systemd-root.js';

const UNITS = ['outpost-agent.service', 'outpost-cloud.service'];
const missing =
  missingCommand('systemd-analyze') ?? missingCommand('systemd-sysusers') ?? missingCommand('systemd-tmpfiles');
const skip = skipForPackage(missing === null ? null : `${missing} (apt-get install systemd)`);

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'outpost-systemd-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const ctx = (): CapturedContext => capturedContext(dir, { PATH: process.env.PATH });

describe.skipIf(skip)('systemd units', () => {
  it('pass systemd-analyze verify with no warning', async () => {
    const root = join(dir, 'verify');
    await fakeRoot(root);
    const etc = join(root, 'etc/systemd/system');
    await mkdir(etc, { recursive: true });
    for (const u of UNITS) await copyFile(join(SYSTEMD_SOURCE_DIR, u), join(etc, u));
    expect(
      await verify(
        root,
        UNITS.map((u) => join(etc, u)),
      ),
    ).toEqual([]);
  });

  it('would be caught by verify if a key were misspelt (the check above can fail)', async () => {
    const root = join(dir, 'typo');
    await fakeRoot(root);
    const etc = join(root, 'etc/systemd/system');
    await mkdir(etc, { recursive: true });
    const unit = (await readFile(join(SYSTEMD_SOURCE_DIR, UNITS[0]), 'utf8')).replace('WatchdogSec=', 'WatchDogSec=');
    await writeFile(join(etc, UNITS[0]), unit);
    const lines = await verify(root, [join(etc, UNITS[0])]);
    expect(lines.join('\n')).toContain("Unknown key 'WatchDogSec'");
  });

  it('comment every directive: each block of settings starts with a comment saying why', async () => {
    for (const u of UNITS) {
      const lines = (await readFile(join(SYSTEMD_SOURCE_DIR, u), 'utf8')).split('\n');
      let commented = false;
      for (const [i, line] of lines.entries()) {
        if (line.startsWith('#')) commented = true;
        else if (line.trim() === '' || line.startsWith('[')) commented = false;
        else expect(commented, `${u}:${i + 1} "${line}" has no comment above it`).toBe(true);
      }
    }
  });

  it('ask for what the daemon needs', async () => {
    const agent = await readFile(join(SYSTEMD_SOURCE_DIR, 'outpost-agent.service'), 'utf8');
    for (const line of [
      'Type=notify',
      'Restart=on-failure',
      'RuntimeDirectory=outpost',
      'StateDirectory=outpost',
      'CacheDirectory=outpost',
      'User=outpost',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'ProtectHome=yes',
      'PrivateTmp=yes',
      'SupplementaryGroups=video render hailo plugdev',
    ]) {
      expect(agent.split('\n')).toContain(line);
    }
    expect(agent).toMatch(/^WatchdogSec=\d+s$/m);
    expect(agent).not.toMatch(/^PrivateDevices=yes/m);
    expect(agent).not.toMatch(/^MemoryDenyWriteExecute=yes/m);
  });
});

describe.skipIf(skip)('outpost agent install-service --root', () => {
  const pem = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const config = {
    deviceId: 'nano-1',
    cloud: { http: 'http://10.0.0.2:8080', mqtt: 'mqtt://10.0.0.2:1883' },
    credentials: { username: 'nano-1', token: 'nano-1-secret-token' },
    trustedKeys: [{ keyid: 'root', publicKey: pem }],
  };

  it('starts the installed outpost-agent, or `outpost agent run` when the cloud package installed it', async () => {
    const execOf = async (bin: string, unit: string): Promise<string | undefined> => {
      const steps = await planInstall({ root: '/', bin, cloud: true, start: false, systemdVersion: null });
      const file = steps.find((s) => s.kind === 'file' && s.path.endsWith(unit));
      return file?.kind === 'file' ? /^ExecStart=(.*)$/m.exec(file.content)?.[1] : undefined;
    };
    expect(await execOf('/usr/local/bin/outpost-agent', 'outpost-agent.service')).toBe(
      '/usr/local/bin/outpost-agent run --config /etc/outpost/agent.json',
    );
    expect(await execOf('/usr/local/bin/outpost-agent', 'outpost-cloud.service')).toBe(
      '/usr/local/bin/outpost cloud start --data-dir /var/lib/outpost-cloud --host 0.0.0.0',
    );
    expect(await execOf('/opt/o/bin/outpost', 'outpost-agent.service')).toBe(
      '/opt/o/bin/outpost agent run --config /etc/outpost/agent.json',
    );
  });

  it('refuses an invalid config and writes nothing', async () => {
    const bad = join(dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ ...config, download: { parallel: 0 } }));
    const root = join(dir, 'refused');
    const c = ctx();
    expect(await installService(['--config', bad, '--root', root], c)).toBe(3);
    expect(c.err()).toContain('download.parallel must be an integer 1..16, got 0');
    await expect(stat(root)).rejects.toThrow();
  });

  it('refuses to install without a config when none is installed', async () => {
    const c = ctx();
    expect(await installService(['--root', join(dir, 'empty'), '--dry-run'], c)).toBe(2);
    expect(c.err()).toContain('pass --config FILE');
  });

  it('prints the steps and changes nothing with --dry-run', async () => {
    const good = join(dir, 'good.json');
    await writeFile(good, JSON.stringify(config));
    const root = join(dir, 'dry');
    const c = ctx();
    expect(await installService(['--config', good, '--root', root, '--dry-run'], c)).toBe(0);
    expect(c.out()).toContain(`would write ${root}/etc/outpost/agent.json (0640)`);
    expect(c.out()).toContain(`would run   systemd-sysusers --root=${root} outpost.conf`);
    await expect(stat(root)).rejects.toThrow();
  });

  it('installs units, users, directories and a root:outpost 0640 config that verify accepts', async () => {
    const good = join(dir, 'good.json');
    await writeFile(good, JSON.stringify(config));
    const root = join(dir, 'image');
    const c = ctx();
    expect(
      await installService(
        ['--config', good, '--root', root, '--bin', '/opt/outpost/bin/outpost', '--cloud', '--json'],
        c,
      ),
    ).toBe(0);
    const report = JSON.parse(c.out());
    expect(report.bin).toBe('/opt/outpost/bin/outpost');

    const group = await readFile(join(root, 'etc/group'), 'utf8');
    const gid = Number(/^outpost:x:(\d+):/m.exec(group)?.[1]);
    expect(gid).toBeGreaterThan(0);
    expect(group).toMatch(/^hailo:x:\d+:/m);
    const passwd = await readFile(join(root, 'etc/passwd'), 'utf8');
    expect(passwd).toMatch(/^outpost:x:\d+:\d+:Outpost agent:\/var\/lib\/outpost:/m);

    const cfg = await stat(join(root, 'etc/outpost/agent.json'));
    expect(cfg.mode & 0o777).toBe(0o640);
    expect(cfg.uid).toBe(0);
    expect(cfg.gid).toBe(gid);
    expect(JSON.parse(await readFile(join(root, 'etc/outpost/agent.json'), 'utf8'))).toEqual(config);
    expect((await stat(join(root, 'var/lib/outpost/models'))).isDirectory()).toBe(true);

    const unit = await readFile(join(root, 'etc/systemd/system/outpost-agent.service'), 'utf8');
    expect(unit).toContain('ExecStart=/opt/outpost/bin/outpost agent run --config /etc/outpost/agent.json');
    expect(await readlink(join(root, 'etc/systemd/system/multi-user.target.wants/outpost-agent.service'))).toBe(
      '/etc/systemd/system/outpost-agent.service',
    );

    // The backoff drop-in is installed exactly where this systemd understands it.
    const version = await systemdVersion();
    const dropIn = join(root, 'etc/systemd/system/outpost-agent.service.d/10-restart-backoff.conf');
    const hasDropIn = await stat(dropIn).then(
      () => true,
      () => false,
    );
    expect(hasDropIn).toBe(version !== null && version >= RESTART_STEPS_SINCE);

    await fakeRoot(root);
    await mkdir(join(root, 'opt/outpost/bin'), { recursive: true });
    await copyFile(join(root, 'usr/bin/outpost'), join(root, 'opt/outpost/bin/outpost'));
    await chmod(join(root, 'opt/outpost/bin/outpost'), 0o755);
    const installed = UNITS.map((u) => join(root, 'etc/systemd/system', u));
    expect(await verify(root, installed)).toEqual([]);
  });
});
