/**
 * Child processes for benchmarks (not a benchmark itself: run.ts skips files starting with `_`):
 * a real `outpost cloud start` in its own process, and the CPU time and memory of any process
 * read from /proc, so a bench can say what each process of a deployment cost.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { pollUntil } from './_fleet-helpers.js';
import { statCpuMs } from './_stats.js';

const SHIM = fileURLToPath(new URL('../cloud-broker/cli/outpost.js', import.meta.url));
/** Clock ticks per second in /proc (USER_HZ, 100 on Linux). */
const TICK = 100;

export interface ProcStats {
  /** utime + stime so far, in ms. */
  cpuMs: number;
  rssMb: number;
  /** The process's RSS high-water mark (VmHWM) since it started. */
  peakMb: number;
}

export async function procStats(pid: number): Promise<ProcStats> {
  const cpuMs = statCpuMs(await readFile(`/proc/${pid}/stat`, 'utf8'));
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { cpuMs, rssMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024 };
}

/**
 * procStats of a process and everything under it: the live descendants' CPU and RSS, plus the
 * CPU of children it already reaped (cutime + cstime). PostgreSQL does its work in one backend
 * process per connection, so the postmaster alone would show none of it. RSS is summed, so memory
 * the processes share (PostgreSQL's shared buffers) counts once per process: an upper bound.
 */
export async function procTreeStats(pid: number): Promise<ProcStats> {
  const own = await procStats(pid);
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  // Fields 16 and 17 (cutime, cstime) are at 13 and 14 after the "(comm) " part.
  own.cpuMs += ((Number(stat[13]) + Number(stat[14])) / TICK) * 1000;
  const children: number[] = [];
  for (const tid of await readdir(`/proc/${pid}/task`).catch(() => [] as string[])) {
    const list = await readFile(`/proc/${pid}/task/${tid}/children`, 'utf8').catch(() => '');
    children.push(...list.split(' ').filter(Boolean).map(Number));
  }
  for (const c of children) {
    const s = await procTreeStats(c).catch(() => null);
    if (!s) continue;
    own.cpuMs += s.cpuMs;
    own.rssMb += s.rssMb;
    own.peakMb += s.peakMb;
  }
  return own;
}

export interface CloudProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** The replica's own listen URLs (not the advertised ones). */
  readonly http: string;
  readonly mqtt: string;
  readonly token: string;
  /** SIGTERM, SIGKILL after `graceMs`; resolves once it exited. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Spawns `outpost cloud start --json --data-dir DIR ...extra` (`--http-port 0` unless `extra` sets it) and resolves once it
 * printed its URLs and its fleet answers. The URLs come from the --json line, not cloud.json:
 * replicas sharing one data folder overwrite each other's cloud.json.
 */
export async function startCloudProcess(
  dataDir: string,
  extra: string[] = [],
  timeoutMs = 60_000,
): Promise<CloudProcess> {
  const child = spawn(
    process.execPath,
    [
      SHIM,
      'cloud',
      'start',
      '--json',
      '--data-dir',
      dataDir,
      ...(extra.includes('--http-port') ? [] : ['--http-port', '0']),
      ...extra,
    ],
    { env: { ...process.env, OUTPOST_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async (graceMs = 10_000) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };
  try {
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`outpost cloud start printed nothing in ${timeoutMs} ms`)),
        timeoutMs,
      );
      child.once('exit', (code, sig) =>
        reject(new Error(`outpost cloud start exited (${code ?? sig}) before listening`)),
      );
      createInterface({ input: child.stdout! }).once('line', (l) => {
        clearTimeout(timer);
        resolve(l);
      });
    });
    const info = JSON.parse(line) as { http: string; mqtt: string; adminTokenFile: string };
    const token = (await readFile(info.adminTokenFile, 'utf8')).trim();
    // The fleet starts once the broker is connected (through Redis, with --redis).
    await pollUntil(
      'the fleet answers',
      async () =>
        (await fetch(`${info.http}/v1/rollouts`, { headers: { authorization: `Bearer ${token}` } }).catch(() => null))
          ?.status === 200,
      timeoutMs,
      100,
    );
    child.stdout!.resume();
    return { child, pid: child.pid!, http: info.http, mqtt: info.mqtt, token, stop };
  } catch (err) {
    await stop(1000);
    throw err;
  }
}
