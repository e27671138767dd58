/**
 * Floors and scheduler counters for bench/socket-vs-inprocess.ts (not a benchmark itself: run.ts
 * skips files starting with `_`).
 *
 * - A plain `net` server with no HTTP and no Outpost code, run inside the bench's agent process:
 *   it reads a length-prefixed payload into one reused buffer (net's `onread`, as the fast lane
 *   reads) and answers 40 bytes. A round trip to it is what any request over this Unix socket
 *   pays between these two processes on this machine before HTTP: the wake-ups, and for a
 *   588 KiB tensor the kernel's two copies.
 * - `schedstat`: how long a thread was runnable but not running (the run-queue wait), from
 *   /proc/<pid>/task/<tid>/schedstat. A request whose time is mostly run-queue wait was slow
 *   because the scheduler gave the core to something else, not because of work on its path.
 * - garbage-collection pauses of both processes on the wall clock, to count the slow requests
 *   that a pause fell into.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { connect, createServer, Socket, type Server } from 'node:net';
import { performance, PerformanceObserver } from 'node:perf_hooks';

const ANSWER = Buffer.alloc(40, 1);

/** Serves floor round trips on `path` (in the agent child). */
export function startFloorServer(path: string): Promise<Server> {
  const buf = Buffer.alloc(2 << 20);
  const server = createServer({ pauseOnConnect: true }, (accepted: Socket) => {
    // The same adoption of the accepted handle as agent/api/lane/server.ts, for `onread`.
    const carrier = accepted as unknown as { _handle: unknown };
    const handle = carrier._handle;
    carrier._handle = null;
    accepted.destroy();
    let got = 0;
    let need = -1;
    const s: Socket = new Socket({
      handle,
      readable: true,
      writable: true,
      onread: {
        buffer: () => buf.subarray(got),
        callback: (n: number) => {
          got += n;
          if (need < 0 && got >= 8) need = 8 + Number(buf.readBigUInt64LE(0));
          if (need >= 0 && got >= need) {
            got = 0;
            need = -1;
            s.write(ANSWER);
          }
          return true;
        },
      },
    } as ConstructorParameters<typeof Socket>[0]);
    s.on('error', () => {});
  });
  return new Promise((resolve) => server.listen(path, () => resolve(server)));
}

/** A client of the floor server: `roundTrip(payload)` sends it and resolves on the answer. */
export async function floorClient(path: string): Promise<{ roundTrip(p: Buffer): Promise<void>; close(): void }> {
  let done: () => void = () => {};
  const s = connect({
    path,
    onread: {
      buffer: Buffer.alloc(1024),
      callback: () => {
        done();
        return true;
      },
    },
  });
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
  return {
    roundTrip: (p) =>
      new Promise<void>((resolve) => {
        done = resolve;
        s.write(p);
      }),
    close: () => s.destroy(),
  };
}

/** A floor payload: 8 bytes of length and `n` bytes. */
export function floorPayload(n: number): Buffer {
  const b = Buffer.alloc(8 + n, 7);
  b.writeBigUInt64LE(BigInt(n), 0);
  return b;
}

const schedstatFds = new Map<number, number>();
const schedstatBuf = Buffer.alloc(128);

/**
 * The run-queue wait (ms) so far of a process's main thread, or NaN where /proc has no schedstat.
 * Read with pread into one small buffer from an fd kept open: readFileSync allocated a 64 KiB
 * buffer per call, and 28 of them per interleaved round were enough external memory to start a
 * mark-compact in the bench's own process every 100-200 ms.
 */
export function runQueueMs(pid: number): number {
  try {
    let fd = schedstatFds.get(pid);
    if (fd === undefined) {
      fd = openSync(`/proc/${pid}/task/${pid}/schedstat`, 'r');
      schedstatFds.set(pid, fd);
    }
    const n = readSync(fd, schedstatBuf, 0, schedstatBuf.length, 0);
    return Number(schedstatBuf.toString('latin1', 0, n).split(' ')[1]) / 1e6;
  } catch {
    return Number.NaN;
  }
}

/** Closes the fds runQueueMs keeps open. */
export function closeRunQueueFds(): void {
  for (const fd of schedstatFds.values()) closeSync(fd);
  schedstatFds.clear();
}

/**
 * Records this process's garbage-collection pauses from now on, as [start, end] in ms on the
 * wall clock (performance.timeOrigin + the entry's time), so pauses of two processes can be laid
 * over the same requests.
 */
export function recordGcPauses(): { pauses(): [number, number][]; stop(): void } {
  const pauses: [number, number][] = [];
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const start = performance.timeOrigin + e.startTime;
      pauses.push([start, start + e.duration]);
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return { pauses: () => pauses.slice(), stop: () => observer.disconnect() };
}

/** How many of `spans` ([start, end] wall-clock ms) overlap one of `pauses`, and the pause time inside them. */
export function overlapping(spans: [number, number][], pauses: [number, number][]): { count: number; ms: number } {
  let count = 0;
  let ms = 0;
  for (const [s, e] of spans) {
    let inside = 0;
    for (const [ps, pe] of pauses) if (ps < e && pe > s) inside += Math.min(e, pe) - Math.max(s, ps);
    if (inside > 0) count++;
    ms += inside;
  }
  return { count, ms };
}
