import { mkdtemp, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentClient } from '../../agent/client/index.js';
import { writeStandaloneConfig } from '../helpers/daemon-process.js';
import { useSupervisedAgents } from '../helpers/supervised-agent.js';
import { useTempDir } from '../helpers/temp-dir.js';

/**
 * `outpost agent run` as systemd starts it: a real child process, a real datagram socket as
 * NOTIFY_SOCKET, a real SIGTERM. The broker is a closed port: READY must not wait for it.
 */
const tmp = useTempDir('outpost-daemon-notify-', 'all');
const startAgent = useSupervisedAgents();

describe('agent run under a supervisor', () => {
  it('sends READY once the socket listens with no broker, STATUS lines, WATCHDOG pings, and STOPPING on SIGTERM', async () => {
    const { path, config } = await writeStandaloneConfig(tmp.dir);
    const { agent, rx } = startAgent({ dir: tmp.dir, config: path, env: { WATCHDOG_USEC: '1000000' } });

    const ready = await rx.until((m) => m.startsWith('READY=1'));
    // READY is sent after listen(): the socket must answer as soon as READY arrived.
    const client = new AgentClient({ socket: config.socket as string });
    expect(await client.health()).toEqual({ live: true, ready: true });
    expect(ready).toMatch(/\nSTATUS=serving 0 model\(s\); connecting to mqtt:\/\/127\.0\.0\.1:\d+/);
    // Nothing was ever connected: the broker was unreachable from the start.
    expect((await client.status()) as { broker?: { connected?: boolean } }).toMatchObject({
      broker: { connected: false },
    });

    // WATCHDOG_USEC=1 s: pings every 0.5 s from the event loop.
    await rx.until(() => rx.messages.filter((m) => m === 'WATCHDOG=1').length >= 3);
    // The session reports that it keeps trying.
    await rx.until((m) => m.startsWith('STATUS=broker unreachable, retrying'));

    agent.signal('SIGTERM');
    const stopping = await rx.until((m) => m.startsWith('STOPPING=1'));
    expect(stopping).toContain('STATUS=stopping');
    expect(await agent.exited).toEqual({ code: 0, signal: null });
    // The socket is gone: a stale one would make the next start's API check slower.
    await expect(stat(config.socket as string)).rejects.toMatchObject({ code: 'ENOENT' });
    // Order: READY before any STOPPING; no READY after STOPPING.
    const iReady = rx.messages.findIndex((m) => m.startsWith('READY=1'));
    const iStop = rx.messages.findIndex((m) => m.startsWith('STOPPING=1'));
    expect(iReady).toBeLessThan(iStop);
    expect(rx.messages.slice(iStop).some((m) => m.startsWith('READY=1'))).toBe(false);
  });

  it('sends no WATCHDOG pings when systemd asked for none, and SIGINT stops it like SIGTERM', async () => {
    const sub = await mkdtemp(join(tmp.dir, 'nowd-'));
    const { path } = await writeStandaloneConfig(sub);
    const { agent, rx } = startAgent({ dir: sub, config: path });
    await rx.until((m) => m.startsWith('READY=1'));
    agent.signal('SIGINT');
    await rx.until((m) => m.startsWith('STOPPING=1'));
    expect(await agent.exited).toEqual({ code: 0, signal: null });
    expect(rx.messages).not.toContain('WATCHDOG=1');
  });
});
