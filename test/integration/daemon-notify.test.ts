import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AgentClient } from '../../agent/client/index.js';
import { agentEnv, notifyReceiver, spawnAgent, writeStandaloneConfig, type AgentProcess, type NotifyReceiver } from '../helpers/daemon-process.js';

/**
 * `outpost agent run` as systemd starts it: a real child process, a real datagram socket as
 * NOTIFY_SOCKET, a real SIGTERM. The broker is a closed port: READY must not wait for it.
 */
let dir: string;
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'outpost-daemon-notify-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

const agents: AgentProcess[] = [];
const receivers: NotifyReceiver[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) await a.kill();
  for (const r of receivers.splice(0)) r.close();
});

describe('agent run under a supervisor', () => {
  it('sends READY once the socket listens with no broker, STATUS lines, WATCHDOG pings, and STOPPING on SIGTERM', async () => {
    const { path, config } = await writeStandaloneConfig(dir);
    const rx = notifyReceiver(dir);
    receivers.push(rx);
    const agent = spawnAgent({ config: path, env: agentEnv({ NOTIFY_SOCKET: rx.path, WATCHDOG_USEC: '1000000' }) });
    agents.push(agent);

    const ready = await rx.until((m) => m.startsWith('READY=1'));
    // READY is sent after listen(): the socket must answer as soon as READY arrived.
    const client = new AgentClient({ socket: config.socket as string });
    expect(await client.health()).toEqual({ live: true, ready: true });
    expect(ready).toMatch(/\nSTATUS=serving 0 model\(s\); connecting to mqtt:\/\/127\.0\.0\.1:\d+/);
    // Nothing was ever connected: the broker was unreachable from the start.
    expect((await client.status()) as { broker?: { connected?: boolean } }).toMatchObject({ broker: { connected: false } });

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
    const sub = await mkdtemp(join(dir, 'nowd-'));
    const { path } = await writeStandaloneConfig(sub);
    const rx = notifyReceiver(sub);
    receivers.push(rx);
    const agent = spawnAgent({ config: path, env: agentEnv({ NOTIFY_SOCKET: rx.path }) });
    agents.push(agent);
    await rx.until((m) => m.startsWith('READY=1'));
    agent.signal('SIGINT');
    await rx.until((m) => m.startsWith('STOPPING=1'));
    expect(await agent.exited).toEqual({ code: 0, signal: null });
    expect(rx.messages).not.toContain('WATCHDOG=1');
  });
});
