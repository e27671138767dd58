import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createNotifier } from '../../agent/system/sd-notify.js';
import { startWatchdog, watchdogIntervalMs } from '../../agent/system/watchdog.js';
import { silentLogger } from '../../protocol/log.js';
import { missingCommand, skipForPackage } from '../helpers/requires.js';

// The receiver plays systemd: a real AF_UNIX datagram socket bound where NOTIFY_SOCKET points.
const require = createRequire(import.meta.url);
const dgram = require('unix-dgram') as {
  createSocket(
    type: 'unix_dgram',
    onMessage: (buf: Buffer) => void,
  ): { bind(path: string): void; close(): void; on(e: string, cb: (err: Error) => void): void };
};

class Receiver {
  readonly messages: string[] = [];
  private waiters: Array<() => void> = [];
  push(m: string): void {
    this.messages.push(m);
    for (const w of this.waiters.splice(0)) w();
  }
  /** Resolves when a message satisfies `pred`; rejects after `ms` (only so a broken test ends). */
  async until(pred: (m: string, all: string[]) => boolean, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.messages.some((m) => pred(m, this.messages))) {
      if (Date.now() > deadline) throw new Error(`no matching notification; got ${JSON.stringify(this.messages)}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 200);
      });
    }
  }
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'outpost-notify-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function pathReceiver(): { path: string; rx: Receiver } {
  const rx = new Receiver();
  const path = join(dir, `notify-${randomBytes(4).toString('hex')}.sock`);
  const sock = dgram.createSocket('unix_dgram', (buf) => rx.push(buf.toString()));
  sock.on('error', (err) => {
    throw err;
  });
  sock.bind(path);
  cleanups.push(() => sock.close());
  return { path, rx };
}

describe('sd_notify on a filesystem socket', () => {
  it('sends READY, STATUS, WATCHDOG, RELOADING and STOPPING', async () => {
    const { path, rx } = pathReceiver();
    const n = createNotifier({ env: { NOTIFY_SOCKET: path }, log: silentLogger });
    expect(n.enabled).toBe(true);
    n.ready('serving 2 models\non /run/outpost/agent.sock');
    n.status('syncing');
    n.watchdog();
    n.reloading('reloading config');
    n.stopping('stopping: finishing 1 inference');
    await rx.until((_, all) => all.length >= 5);
    n.close();
    expect(rx.messages).toEqual([
      'READY=1\nSTATUS=serving 2 models on /run/outpost/agent.sock',
      'STATUS=syncing',
      'WATCHDOG=1',
      'RELOADING=1\nSTATUS=reloading config',
      'STOPPING=1\nSTATUS=stopping: finishing 1 inference',
    ]);
  });

  it('is a no-op without NOTIFY_SOCKET and survives a socket nobody listens on', () => {
    const off = createNotifier({ env: {}, log: silentLogger });
    expect(off.enabled).toBe(false);
    off.ready();
    const gone = createNotifier({ env: { NOTIFY_SOCKET: join(dir, 'nobody.sock') }, log: silentLogger });
    expect(() => {
      gone.ready();
      gone.watchdog();
      gone.close();
      gone.status('after close');
    }).not.toThrow();
  });
});

describe('sd_notify on an abstract socket', () => {
  const why = missingCommand('python3');
  it.skipIf(skipForPackage(why))('relays to an "@" address', async () => {
    // python3 binds the abstract receiver: unix-dgram cannot (that is why the relay exists).
    const name = `outpost-test-${randomBytes(6).toString('hex')}`;
    const py = spawn(
      'python3',
      [
        '-u',
        '-c',
        [
          'import socket, sys',
          's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
          `s.bind('\\0${name}')`,
          "print('bound', flush=True)",
          'while True:',
          "    print(s.recv(4096).decode().replace('\\n', '|'), flush=True)",
        ].join('\n'),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    cleanups.push(() => py.kill());
    const rx = new Receiver();
    let buf = '';
    py.stdout.on('data', (b: Buffer) => {
      buf += b.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        rx.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    await rx.until((m) => m === 'bound');
    const n = createNotifier({ env: { NOTIFY_SOCKET: `@${name}` }, log: silentLogger });
    n.ready('up');
    n.watchdog();
    n.stopping();
    await rx.until((m) => m === 'STOPPING=1');
    n.close();
    expect(rx.messages.slice(1)).toEqual(['READY=1|STATUS=up', 'WATCHDOG=1', 'STOPPING=1']);
  });
});

describe('watchdog', () => {
  it('derives the interval from WATCHDOG_USEC and WATCHDOG_PID', () => {
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '20000000' })).toBe(10_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '20000000', WATCHDOG_PID: String(process.pid) })).toBe(10_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '20000000', WATCHDOG_PID: '1' }, 4242)).toBe(0);
    expect(watchdogIntervalMs({})).toBe(0);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: 'x' })).toBe(0);
  });

  it('pings from the event loop and stops pinging when the loop is blocked', async () => {
    const { path, rx } = pathReceiver();
    const notifyModule = fileURLToPath(new URL('../../agent/system/sd-notify.ts', import.meta.url));
    const watchdogModule = fileURLToPath(new URL('../../agent/system/watchdog.ts', import.meta.url));
    const logModule = fileURLToPath(new URL('../../protocol/log.ts', import.meta.url));
    // A stand-in daemon: watchdog on, then on "block" from the test it says so on the notify
    // socket (same channel as the pings, so ordering is certain) and spins its loop forever.
    const script = `
      import { createNotifier } from ${JSON.stringify(notifyModule)};
      import { startWatchdog } from ${JSON.stringify(watchdogModule)};
      import { silentLogger } from ${JSON.stringify(logModule)};
      const n = createNotifier({ log: silentLogger });
      const w = startWatchdog(n);
      n.ready('interval ' + w.intervalMs);
      const keepAlive = setInterval(() => {}, 1000);
      process.stdin.on('data', () => { n.status('blocking'); for (;;) {} });
    `;
    const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      env: { ...process.env, NOTIFY_SOCKET: path, WATCHDOG_USEC: '100000' },
      stdio: ['pipe', 'inherit', 'inherit'],
    });
    cleanups.push(() => child.kill('SIGKILL'));
    await rx.until((m) => m.startsWith('READY=1'));
    expect(rx.messages.find((m) => m.startsWith('READY=1'))).toBe('READY=1\nSTATUS=interval 50');
    await rx.until((_, all) => all.filter((m) => m === 'WATCHDOG=1').length >= 3);
    child.stdin!.write('block\n');
    await rx.until((m) => m === 'STATUS=blocking');
    // Forty intervals of silence: a live loop would have sent about forty pings by now.
    await new Promise((r) => setTimeout(r, 2_000));
    const afterBlock = rx.messages.slice(rx.messages.indexOf('STATUS=blocking') + 1);
    expect(afterBlock).toEqual([]);
    expect(child.exitCode).toBe(null);
  });

  it('does nothing when systemd asked for no watchdog', () => {
    const n = createNotifier({ env: {}, log: silentLogger });
    const w = startWatchdog(n, { WATCHDOG_USEC: '1000000' });
    expect(w.intervalMs).toBe(0);
    w.stop();
  });
});
