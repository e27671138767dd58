import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, lstat, readlink } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { runCli } from '../../cloud-broker/cli/main.js';

/**
 * Runs the real `outpost` CLI in tests: in-process through `runCli` with captured streams (fast,
 * the same code path minus process setup), or as a child process through the package's bin shim
 * (exit codes, signals, kill -9). Plus a directory snapshot to prove "nothing changed", and a TCP
 * proxy that cuts or stalls a connection after N bytes to fake a broken network for real.
 */
export const SHIM = fileURLToPath(new URL('../../cloud-broker/cli/outpost.js', import.meta.url));

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  /** The last stdout line parsed as JSON (for --json runs). */
  json<T = Record<string, any>>(): T;
  /** The error code of a --json failure (`{"error": {code}}`) or of `error CODE:` on stderr. */
  errorCode(): string | undefined;
}

function makeRun(code: number, stdout: string, stderr: string): CliRun {
  return {
    code,
    stdout,
    stderr,
    json<T>() {
      const lines = stdout.trim().split('\n');
      return JSON.parse(lines[lines.length - 1]) as T;
    },
    errorCode() {
      const m = /error ([A-Z0-9_]+):/.exec(stderr);
      if (m) return m[1];
      try {
        return (JSON.parse(stdout.trim().split('\n').pop() ?? '') as { error?: { code?: string } }).error?.code;
      } catch {
        return undefined;
      }
    },
  };
}

/** A clean env: no OUTPOST_* from the developer's shell, HOME in a temp dir. */
export function cleanEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('OUTPOST_')) env[k] = v;
  return { ...env, OUTPOST_LOG_LEVEL: 'silent', ...extra };
}

export async function runInProcess(
  argv: string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv; signal?: AbortSignal },
): Promise<CliRun> {
  const out = new PassThrough();
  const err = new PassThrough();
  const o: Buffer[] = [];
  const e: Buffer[] = [];
  out.on('data', (c: Buffer) => o.push(c));
  err.on('data', (c: Buffer) => e.push(c));
  const code = await runCli(argv, {
    cwd: opts.cwd,
    env: opts.env,
    stdout: out,
    stderr: err,
    signal: opts.signal ?? new AbortController().signal,
  });
  return makeRun(code, Buffer.concat(o).toString('utf8'), Buffer.concat(e).toString('utf8'));
}

export interface Spawned {
  pid: number;
  done: Promise<CliRun & { signal: NodeJS.Signals | null }>;
  kill(sig?: NodeJS.Signals): void;
}

export function spawnCli(argv: string[], opts: { cwd: string; env: NodeJS.ProcessEnv }): Spawned {
  const child = spawn(process.execPath, [SHIM, ...argv], {
    cwd: opts.cwd,
    env: opts.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const o: Buffer[] = [];
  const e: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => o.push(c));
  child.stderr.on('data', (c: Buffer) => e.push(c));
  const done = new Promise<CliRun & { signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ ...makeRun(code ?? -1, Buffer.concat(o).toString(), Buffer.concat(e).toString()), signal }),
    );
  });
  return { pid: child.pid!, done, kill: (sig = 'SIGKILL') => child.kill(sig) };
}

export async function tempDir(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `outpost-${prefix}-`));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Every entry under `dir` with the sha256 of files and the target of symlinks. */
export async function snapshotDir(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(d: string): Promise<void> {
    for (const name of (await readdir(d)).sort()) {
      const p = join(d, name);
      const st = await lstat(p);
      const key = relative(dir, p);
      if (st.isSymbolicLink()) out[key] = `link:${await readlink(p)}`;
      else if (st.isDirectory()) {
        out[key + '/'] = 'dir';
        await walk(p);
      } else
        out[key] = createHash('sha256')
          .update(await readFile(p))
          .digest('hex');
    }
  }
  await walk(dir);
  return out;
}

export interface Proxy {
  url: string;
  /** Bytes forwarded client -> server and server -> client so far, all connections. */
  stats: { up: number; down: number };
  close(): Promise<void>;
}

/**
 * A TCP proxy in front of `target` (host:port). `cutUpAfter`: destroy both sockets once that many
 * bytes went to the server (a truncated upload). `stallDownAfter`: stop forwarding the answer
 * after that many bytes and hold the connection open (a download that hangs mid-file).
 */
export async function startProxy(target: URL, opts: { cutUpAfter?: number; stallDownAfter?: number }): Promise<Proxy> {
  const stats = { up: 0, down: 0 };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    // Counted per connection, so small API answers on other connections never trip the limits.
    let up = 0;
    let down = 0;
    const kill = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', kill);
    upstream.on('error', kill);
    client.on('close', kill);
    upstream.on('close', () => client.end());
    client.on('data', (c: Buffer) => {
      if (opts.cutUpAfter !== undefined && up + c.length > opts.cutUpAfter) {
        const part = c.subarray(0, Math.max(0, opts.cutUpAfter - up));
        stats.up += part.length;
        upstream.write(part, () => kill());
        return;
      }
      up += c.length;
      stats.up += c.length;
      upstream.write(c);
    });
    upstream.on('data', (c: Buffer) => {
      if (opts.stallDownAfter !== undefined && down + c.length > opts.stallDownAfter) {
        const part = c.subarray(0, Math.max(0, opts.stallDownAfter - down));
        down = opts.stallDownAfter;
        stats.down += part.length;
        client.write(part);
        upstream.pause();
        return;
      }
      down += c.length;
      stats.down += c.length;
      client.write(c);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
