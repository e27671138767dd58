import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { moduleLogger, type Logger } from '../../protocol/log.js';

/**
 * sd_notify(3) for the agent: READY=1 / STATUS= / WATCHDOG=1 / STOPPING=1 datagrams to the
 * socket systemd names in NOTIFY_SOCKET.
 *
 * Node has no AF_UNIX datagram sockets, and systemd accepts only datagrams there. Choices:
 * - filesystem sockets (what systemd gives every system service: /run/systemd/notify) go through
 *   the `unix-dgram` addon. It is sent from the agent's own PID, so the unit's default
 *   NotifyAccess=main accepts it, and a send is one syscall on the event loop (no process, no
 *   race with PID 1 attributing the sender).
 * - abstract sockets ("@name", used by some containers and test harnesses) cannot go through
 *   unix-dgram, which always passes a full-size sockaddr (the abstract name would get padded with
 *   NULs and never match). They go through one long-lived python3 relay that reads base64 lines
 *   on stdin. The relay stays alive, so PID 1 can resolve its cgroup (spawning systemd-notify per
 *   message races with the sender's exit), but its PID is not the main PID: such a unit needs
 *   NotifyAccess=all.
 * Nothing here throws: a daemon must not die because its supervisor is unreachable. The first
 * failure is logged at warn with code NOTIFY_FAILED, later ones at debug.
 */
export interface Notifier {
  /** False when NOTIFY_SOCKET is unset: every call is then a no-op. */
  readonly enabled: boolean;
  /** READY=1 (and a STATUS line). Send once the local socket listens. */
  ready(status?: string): void;
  /** STATUS=text: shown by `systemctl status`. */
  status(text: string): void;
  /** WATCHDOG=1. Prefer startWatchdog(), which sends it from the event loop. */
  watchdog(): void;
  /** RELOADING=1 before applying a SIGHUP reload; call ready() when done. */
  reloading(status?: string): void;
  /** STOPPING=1 at the start of shutdown. */
  stopping(status?: string): void;
  /** Raw message ("KEY=value\n..."), for anything not covered above. */
  send(message: string): void;
  close(): void;
}

export interface NotifierOptions {
  env?: NodeJS.ProcessEnv;
  log: Logger;
}

interface Transport {
  send(buf: Buffer, onError: (err: Error) => void): void;
  close(): void;
}

interface UnixDgramSocket {
  send(buf: Buffer, offset: number, length: number, path: string, cb: (err?: Error) => void): void;
  on(event: 'error', cb: (err: Error) => void): void;
  close(): void;
}

// Newlines would split one STATUS into several assignments; systemd reads text up to the newline.
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').slice(0, 1024);
}

function pathTransport(path: string): Transport {
  const require = createRequire(import.meta.url);
  const dgram = require('unix-dgram') as { createSocket(type: 'unix_dgram'): UnixDgramSocket };
  const sock = dgram.createSocket('unix_dgram');
  let lastError: (err: Error) => void = () => {};
  sock.on('error', (err) => lastError(err));
  return {
    send(buf, onError) {
      lastError = onError;
      sock.send(buf, 0, buf.length, path, (err) => {
        if (err) onError(err);
      });
    },
    close() {
      sock.close();
    },
  };
}

const RELAY = [
  'import base64, socket, sys',
  'a = sys.argv[1]',
  "a = '\\0' + a[1:] if a.startswith('@') else a",
  's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
  'for line in sys.stdin:',
  '    try:',
  '        s.sendto(base64.b64decode(line), a)',
  '    except OSError as e:',
  "        sys.stderr.write(str(e) + '\\n'); sys.stderr.flush()",
].join('\n');

function relayTransport(address: string, log: Logger): Transport {
  let onError: (err: Error) => void = () => {};
  const child: ChildProcess = spawn('python3', ['-u', '-c', RELAY, address], { stdio: ['pipe', 'ignore', 'pipe'] });
  child.on('error', (err) => onError(err));
  child.stderr?.on('data', (b: Buffer) => onError(new Error(b.toString().trim())));
  child.stdin?.on('error', (err) => onError(err));
  // The relay must never keep the daemon alive or outlive it.
  child.unref();
  (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();
  log.debug(
    { pid: child.pid, address },
    'sd_notify relay for an abstract socket started (the unit needs NotifyAccess=all)',
  );
  return {
    send(buf, cb) {
      onError = cb;
      if (child.stdin?.writable) child.stdin.write(buf.toString('base64') + '\n');
      else cb(new Error('the sd_notify relay is not running'));
    },
    close() {
      child.stdin?.end();
      child.kill();
    },
  };
}

const disabled: Notifier = Object.freeze({
  enabled: false,
  ready() {},
  status() {},
  watchdog() {},
  reloading() {},
  stopping() {},
  send() {},
  close() {},
});

export function createNotifier(opts: NotifierOptions): Notifier {
  const env = opts.env ?? process.env;
  const address = env.NOTIFY_SOCKET;
  const log = moduleLogger(opts.log, 'sd-notify');
  if (!address) return disabled;
  let transport: Transport;
  try {
    if (address.startsWith('@')) transport = relayTransport(address, log);
    else if (address.startsWith('/')) transport = pathTransport(address);
    else {
      log.warn(
        { code: 'NOTIFY_FAILED', address },
        'NOTIFY_SOCKET is neither a path nor an abstract "@" name; systemd notifications are off',
      );
      return disabled;
    }
  } catch (err) {
    log.warn(
      { code: 'NOTIFY_FAILED', err, address },
      'cannot open NOTIFY_SOCKET (is the unix-dgram addon built? run npm rebuild unix-dgram); systemd notifications are off',
    );
    return disabled;
  }
  let failures = 0;
  let closed = false;
  const onError = (err: Error): void => {
    failures++;
    if (failures === 1)
      log.warn({ code: 'NOTIFY_FAILED', err, address }, 'sd_notify send failed; the agent keeps running');
    else log.debug({ err, failures }, 'sd_notify send failed again');
  };
  const send = (message: string): void => {
    if (closed) return;
    try {
      transport.send(Buffer.from(message), onError);
    } catch (err) {
      onError(err as Error);
    }
  };
  const withStatus = (first: string, status?: string): string =>
    status === undefined ? first : `${first}\nSTATUS=${oneLine(status)}`;
  return {
    enabled: true,
    ready: (status) => send(withStatus('READY=1', status)),
    status: (text) => send(`STATUS=${oneLine(text)}`),
    watchdog: () => send('WATCHDOG=1'),
    reloading: (status) => send(withStatus('RELOADING=1', status)),
    stopping: (status) => send(withStatus('STOPPING=1', status)),
    send,
    close() {
      if (closed) return;
      closed = true;
      try {
        transport.close();
      } catch {
        /* already closed */
      }
    },
  };
}
