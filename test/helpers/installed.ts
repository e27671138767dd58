import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/**
 * Helpers for tests of the installed packages (test/e2e/install.test.ts): run npm and the
 * installed binaries with an environment that carries nothing of the repository or of the npm
 * process that runs the tests (no npm_* variables, NODE_OPTIONS, NODE_PATH or OUTPOST_*), and look at
 * a running process from /proc.
 */
export function outsideEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    // NODE_OPTIONS/NODE_PATH could load a loader or resolve from the repository; the rest of
    // NODE_* (NODE_EXTRA_CA_CERTS for a proxy's CA) is the machine's and stays.
    if (
      /^(npm_|OUTPOST_|VITEST|TSX)/i.test(k) ||
      ['NODE_OPTIONS', 'NODE_PATH', 'NOTIFY_SOCKET', 'INIT_CWD'].includes(k)
    )
      continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

/** What the device package must not depend on: the cloud's engines, the transpiler, the test tools. */
export const NOT_ON_DEVICE = [
  'aedes',
  'better-sqlite3',
  'ws',
  'onnx-proto',
  'tsx',
  'esbuild',
  'typescript',
  'vitest',
  'pg',
];

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end; never throws on a non-zero exit (the caller asserts on it). */
export async function runTo(
  cmd: string,
  args: string[],
  opts: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<Ran> {
  try {
    const r = await execFileP(cmd, args, { ...opts, timeout: opts.timeoutMs, maxBuffer: 64 << 20 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string; message: string };
    return {
      code: typeof e.code === 'number' ? e.code : null,
      stdout: e.stdout ?? '',
      stderr: (e.stderr ?? '') + e.message,
    };
  }
}

/** The last stdout line as JSON, or an error that shows what the command printed. */
export function lastJson<T = Record<string, any>>(r: Ran): T {
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as T;
  } catch {
    throw new Error(`no JSON (exit ${r.code}); stdout: ${r.stdout.slice(-2000)}\nstderr: ${r.stderr.slice(-2000)}`);
  }
}

/** A long-running child whose output is kept, stopped by its PID (SIGTERM, then SIGKILL). */
export function startChild(cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv }) {
  const child: ChildProcess = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  return {
    child,
    pid: child.pid ?? -1,
    output: () => out,
    async stop(): Promise<number | null> {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** A process's command line, environment and direct children, read from /proc. */
export async function procView(
  pid: number,
): Promise<{ argv: string[]; env: string[]; children: { pid: number; argv: string[] }[] }> {
  const split = (s: string) => s.split('\0').filter(Boolean);
  const argv = split(await readFile(`/proc/${pid}/cmdline`, 'utf8'));
  const env = split(await readFile(`/proc/${pid}/environ`, 'utf8'));
  const children: { pid: number; argv: string[] }[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(join('/proc', entry, 'stat'), 'utf8').catch(() => '');
    // Field 4 (ppid) follows "(comm)", and comm may contain spaces: parse after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid !== pid) continue;
    children.push({
      pid: Number(entry),
      argv: split(await readFile(join('/proc', entry, 'cmdline'), 'utf8').catch(() => '')),
    });
  }
  return { argv, env, children };
}
