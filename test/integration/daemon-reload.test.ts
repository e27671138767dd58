import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentClient } from '../../agent/client/index.js';
import { writeStandaloneConfig } from '../helpers/daemon-process.js';
import { useSupervisedAgents } from '../helpers/supervised-agent.js';
import { useTempDir } from '../helpers/temp-dir.js';

/**
 * SIGHUP against the real process: the reloadable keys (log.level, telemetry.*, api.*) take
 * effect without a restart, a restart-only key is logged as such and keeps its running value,
 * and a broken file leaves the running config alone.
 */
const tmp = useTempDir('outpost-daemon-reload-', 'all');
const startAgent = useSupervisedAgents();

interface Status {
  api: { limits: { maxConcurrentPerModel: number; maxBodyBytes: number } };
}
const INFO = 30;
const WARN = 40;

describe('SIGHUP', () => {
  it('applies log level, telemetry and API limits live; a restart-only key is logged and not applied', async () => {
    const { path, config } = await writeStandaloneConfig(tmp.dir, {
      log: { level: 'warn' },
      telemetry: { enabled: true, intervalSeconds: 600 },
      api: { maxConcurrentPerModel: 4 },
    });
    const { agent, rx } = startAgent({ dir: tmp.dir, config: path });
    await rx.until((m) => m.startsWith('READY=1'));
    const client = new AgentClient({ socket: config.socket as string });
    expect(((await client.status()) as unknown as Status).api.limits.maxConcurrentPerModel).toBe(4);
    // At warn, the start's info lines were not written.
    expect(agent.logs.some((l) => l.level === INFO)).toBe(false);

    const movedSocket = join(tmp.dir, 'moved.sock');
    await writeFile(
      path,
      JSON.stringify({
        ...config,
        log: { level: 'info' },
        telemetry: { enabled: true, intervalSeconds: 30 },
        api: { maxConcurrentPerModel: 9, maxBodyBytes: 2048 },
        socket: movedSocket,
      }),
    );
    agent.signal('SIGHUP');
    const reloaded = await agent.waitForLog((l) => l.msg === 'configuration reloaded');
    // Written at info: the new level was in force before the line was logged.
    expect(reloaded.level).toBe(INFO);
    expect([...(reloaded.applied as string[])].sort()).toEqual([
      'api.maxBodyBytes',
      'api.maxConcurrentPerModel',
      'log.level',
      'telemetry.intervalSeconds',
    ]);
    expect(reloaded.restartNeeded).toEqual(['socket']);
    const warned = agent.logs.find((l) => l.level === WARN && /not applied until a restart: socket/.test(l.msg));
    expect(warned).toBeDefined();
    expect(agent.logs.find((l) => l.msg === 'telemetry reconfigured')).toMatchObject({
      intervalSeconds: 30,
      enabled: true,
    });
    // systemd saw RELOADING=1 then READY=1 again.
    const iReload = rx.messages.findIndex((m) => m.startsWith('RELOADING=1'));
    expect(iReload).toBeGreaterThan(0);
    await rx.until((m) => m.startsWith('READY=1\nSTATUS=configuration reloaded'));

    const limits = ((await client.status()) as unknown as Status).api.limits;
    expect(limits).toMatchObject({ maxConcurrentPerModel: 9, maxBodyBytes: 2048 });
    // The restart-only key kept its running value: still on the old socket, nothing at the new one.
    await expect(stat(movedSocket)).rejects.toMatchObject({ code: 'ENOENT' });
    // A broken file on SIGHUP: logged, the running config stays.
    await writeFile(path, JSON.stringify({ ...config, api: { maxConcurrentPerModel: 0 } }));
    agent.signal('SIGHUP');
    const failed = await agent.waitForLog((l) => l.msg === 'reload failed; keeping the current configuration');
    expect(JSON.stringify(failed)).toContain('api.maxConcurrentPerModel');
    expect(((await client.status()) as unknown as Status).api.limits.maxConcurrentPerModel).toBe(9);

    agent.signal('SIGTERM');
    expect(await agent.exited).toEqual({ code: 0, signal: null });
  });
});
