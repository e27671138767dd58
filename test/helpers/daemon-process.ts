import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The agent as systemd runs it, for tests: `node --import tsx agent/cli/bin.ts agent run` in a
 * child process, with a real AF_UNIX datagram socket playing systemd's NOTIFY_SOCKET, its pino
 * lines parsed as they arrive, and a TCP switch that stands for a broker that is down or up.
 */
export const REPO = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(REPO, 'agent', 'cli', 'bin.ts');

/** Resolves when `pred` holds; rejects after `ms` with `describe()` (only so a broken test ends). */
async function until(
  pred: () => boolean,
  ms: number,
  what: string,
  describe: () => string,
  wake: (cb: () => void) => void,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; ${describe()}`);
    await new Promise<void>((r) => {
      wake(r);
      setTimeout(r, 100);
    });
  }
}

export interface NotifyReceiver {
  readonly path: string;
  /** Every datagram received, in order. */
  readonly messages: string[];
  until(pred: (m: string) => boolean, ms?: number): Promise<string>;
  close(): void;
}

/** Binds a datagram socket at `dir/notify-*.sock`, as systemd binds /run/systemd/notify. */
export function notifyReceiver(dir: string): NotifyReceiver {
  const require = createRequire(import.meta.url);
  const dgram = require('unix-dgram') as {
    createSocket(
      type: 'unix_dgram',
      onMessage: (buf: Buffer) => void,
    ): { bind(path: string): void; close(): void; on(e: string, cb: (err: Error) => void): void };
  };
  const messages: string[] = [];
  let waiters: Array<() => void> = [];
  const path = join(dir, `notify-${randomBytes(4).toString('hex')}.sock`);
  const sock = dgram.createSocket('unix_dgram', (buf) => {
    messages.push(buf.toString());
    for (const w of waiters.splice(0)) w();
  });
  sock.on('error', () => undefined);
  sock.bind(path);
  return {
    path,
    messages,
    async until(pred, ms = 20_000) {
      await until(
        () => messages.some(pred),
        ms,
        'a notification',
        () => `got ${JSON.stringify(messages)}`,
        (cb) => waiters.push(cb),
      );
      return messages.find(pred)!;
    },
    close() {
      waiters = [];
      sock.close();
    },
  };
}

export interface LogLine {
  level: number;
  msg: string;
  module?: string;
  [k: string]: unknown;
}

export interface AgentProcess {
  readonly child: ChildProcess;
  /** Parsed pino lines from stdout (non-JSON lines are kept as {level: 0, msg}). */
  readonly logs: LogLine[];
  readonly stderr: () => string;
  /** Resolves with the exit code (or the signal's name) when the process ends. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitForLog(pred: (l: LogLine) => boolean, ms?: number): Promise<LogLine>;
  signal(sig: NodeJS.Signals): void;
  /** SIGKILL if still running (cleanup). */
  kill(): Promise<void>;
}

export interface SpawnAgentOptions {
  config: string;
  env?: NodeJS.ProcessEnv;
  args?: string[];
  /**
   * Run the built dist/agent-bundle/bin.js with plain node (what the device package ships and the
   * unit runs; `npm run build` first) instead of the sources through tsx. Benchmarks use it.
   */
  compiled?: boolean;
}

/** A clean environment for the agent: nothing OUTPOST_* from the developer's shell. */
export function agentEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('OUTPOST_') && k !== 'NOTIFY_SOCKET' && !k.startsWith('WATCHDOG_')) env[k] = v;
  }
  return { ...env, ...extra };
}

export function spawnAgent(opts: SpawnAgentOptions): AgentProcess {
  const entry = opts.compiled ? [join(REPO, 'dist', 'agent-bundle', 'bin.js')] : ['--import', 'tsx', BIN];
  const child = spawn(process.execPath, [...entry, 'run', '--config', opts.config, ...(opts.args ?? [])], {
    cwd: REPO,
    env: opts.env ?? agentEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogLine[] = [];
  let err = '';
  const waiters: Array<() => void> = [];
  let buf = '';
  child.stdout!.on('data', (b: Buffer) => {
    buf += b.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        logs.push({ level: 0, msg: line });
      }
    }
    for (const w of waiters.splice(0)) w();
  });
  child.stderr!.on('data', (b: Buffer) => {
    err += b.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      for (const w of waiters.splice(0)) w();
      resolve({ code, signal });
    });
  });
  let done = false;
  void exited.then(() => {
    done = true;
  });
  return {
    child,
    logs,
    exited,
    stderr: () => err,
    async waitForLog(pred, ms = 30_000) {
      await until(
        () => logs.some(pred) || done,
        ms,
        'a log line',
        () => `stderr: ${err.slice(-2000)}; last logs: ${JSON.stringify(logs.slice(-5))}`,
        (cb) => waiters.push(cb),
      );
      const hit = logs.find(pred);
      if (!hit)
        throw new Error(
          `the agent exited before the log line appeared; stderr: ${err.slice(-2000)}; last logs: ${JSON.stringify(logs.slice(-5))}`,
        );
      return hit;
    },
    signal(sig) {
      child.kill(sig);
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** A local port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/**
 * A TCP switch in front of a broker: while closed it resets every connection (the broker is down,
 * as far as the agent can tell); once opened it pipes connections to `target`.
 */
export interface BrokerSwitch {
  readonly url: string;
  open(target: { host: string; port: number }): void;
  close(): Promise<void>;
  /** Connections refused while closed. */
  readonly refused: number;
}

export async function brokerSwitch(): Promise<BrokerSwitch> {
  let target: { host: string; port: number } | null = null;
  let refused = 0;
  const conns = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    conns.add(s);
    s.on('close', () => conns.delete(s));
    s.on('error', () => undefined);
    if (!target) {
      refused++;
      s.resetAndDestroy();
      return;
    }
    const up = net.connect(target.port, target.host);
    conns.add(up);
    up.on('close', () => {
      conns.delete(up);
      s.destroy();
    });
    up.on('error', () => s.destroy());
    s.on('close', () => up.destroy());
    s.pipe(up).pipe(s);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    get refused() {
      return refused;
    },
    open(t) {
      target = t;
    },
    async close() {
      for (const c of conns) c.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
    },
  };
}

/**
 * Writes a standalone agent.json whose cloud is unreachable (for startup, config and offline
 * tests that need no cloud): a fresh Ed25519 key, a closed MQTT port and a closed HTTP port.
 */
export async function writeStandaloneConfig(
  dir: string,
  extra: Record<string, unknown> = {},
): Promise<{ path: string; config: Record<string, unknown> }> {
  const { publicKey } = generateKeyPairSync('ed25519');
  const mqttPort = await closedPort();
  const config: Record<string, unknown> = {
    deviceId: 'standalone-1',
    cloud: { http: `http://127.0.0.1:${await closedPort()}`, mqtt: `mqtt://127.0.0.1:${mqttPort}` },
    credentials: { username: 'standalone-1', token: randomBytes(16).toString('hex') },
    trustedKeys: [{ keyid: 'test', publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString() }],
    modelsDir: join(dir, 'models'),
    socket: join(dir, 'agent.sock'),
    mqtt: { reconnectMinMs: 200, reconnectMaxMs: 1000 },
    ...extra,
  };
  const path = join(dir, 'agent.json');
  await writeFile(path, JSON.stringify(config, null, 2));
  return { path, config };
}

/** Runs one device verb (`agent check-config ...`) in a child process to its end. */
export async function runAgentVerb(
  args: string[],
  env: NodeJS.ProcessEnv = agentEnv(),
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', BIN, ...args], {
    cwd: REPO,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => {
    stdout += b.toString();
  });
  child.stderr!.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  return { code, stdout, stderr };
}

/** One request that went through the slow mirror. */
export interface MirrorRequest {
  path: string;
  range: string | undefined;
  status: number;
  /** Body bytes passed to the client so far. */
  bytes: number;
  /** Of those, bytes the mirror's socket still holds (not yet handed to the kernel). */
  unsent: () => number;
}

export interface SlowMirror {
  readonly url: string;
  readonly requests: MirrorRequest[];
  /**
   * Stops passing bytes on (connections stay open, as on a stalled uplink). Once a held request's
   * `unsent()` is 0, every byte it counted is in the client host's kernel: a test that stops the
   * client then knows exactly what reached it, instead of racing the next piece.
   */
  hold(): void;
  release(): void;
  close(): Promise<void>;
}

/**
 * An HTTP mirror in front of the cloud that passes blob bodies on in `chunk`-byte pieces every
 * `delayMs` (a slow uplink), so a test can stop the agent in the middle of a download.
 */
export async function slowMirror(
  target: string,
  opts: { chunk: number; delayMs: number; token?: string },
): Promise<SlowMirror> {
  const http = await import('node:http');
  const requests: MirrorRequest[] = [];
  const sockets = new Set<net.Socket>();
  let held = false;
  const waiting = new Set<() => void>();
  const srv = http.createServer((req, res) => {
    const rec: MirrorRequest = {
      path: req.url ?? '',
      range: req.headers.range,
      status: 0,
      bytes: 0,
      // A response the client tore down keeps its buffer: nothing of it will be sent any more.
      unsent: () => (res.destroyed ? 0 : res.writableLength),
    };
    requests.push(rec);
    const up = http.request(
      new URL(req.url ?? '/', target),
      {
        method: req.method,
        // Devices send a mirror no credentials (docs/security.md); a mirror that pulls from the cloud
        // reads with its own token, as a CDN in front of an origin would.
        headers: {
          ...req.headers,
          host: new URL(target).host,
          ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
        },
      },
      (ur) => {
        rec.status = ur.statusCode ?? 0;
        res.writeHead(rec.status, ur.headers);
        const queue: Buffer[] = [];
        let ended = false;
        let timer: NodeJS.Timeout | null = null;
        const pump = (): void => {
          timer = null;
          if (held) {
            waiting.add(pump);
            return;
          }
          const all = Buffer.concat(queue.splice(0));
          const piece = all.subarray(0, opts.chunk);
          if (all.length > piece.length) queue.push(all.subarray(piece.length));
          if (piece.length > 0) {
            rec.bytes += piece.length;
            res.write(piece);
          }
          if (queue.length > 0) timer = setTimeout(pump, opts.delayMs);
          else if (ended) res.end();
          else ur.resume();
        };
        ur.on('data', (b: Buffer) => {
          queue.push(b);
          ur.pause();
          timer ??= setTimeout(pump, opts.delayMs);
        });
        ur.on('end', () => {
          ended = true;
          timer ??= setTimeout(pump, 0);
        });
        res.on('close', () => {
          if (timer) clearTimeout(timer);
          waiting.delete(pump);
          ur.destroy();
        });
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  srv.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(srv.address() as net.AddressInfo).port}`,
    requests,
    hold() {
      held = true;
    },
    release() {
      held = false;
      const again = [...waiting];
      waiting.clear();
      for (const p of again) p();
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
    },
  };
}
