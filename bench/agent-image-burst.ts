/**
 * `npm run bench -- agent-image-burst`: the agent's RSS under a burst of large images (issue 11
 * D6). Four 8000x8000 PNGs (about 190 KB each, 192 MB decoded each) are sent at once, in several
 * rounds, to a child process that runs the agent's real API server and runtime, first with the
 * in-flight budget effectively off (what the agent did before: every image decoded at once), then
 * with the default budget (api.maxBytesInFlight, 512 MiB). The child samples its own RSS every
 * 10 ms; rows give the peak over idle for both, and their ratio.
 *
 * The bound this shows: peak RSS <= idle + budget + the decoder's working memory of the images
 * admitted at once (libvips tiles and the float tensor; ~1 image's worth here).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { AgentClient } from '../agent/client/index.js';
import { DEFAULT_LIMITS } from '../agent/api/types.js';
import type { OutpostError } from '../protocol/errors/index.js';
import { SOURCE_CHILD_ARGS } from './_compiled.js';
import type { BenchRow } from './run.js';

const MB = 1024 * 1024;

/** Child: serve one classifier with the given budget; answer {idle, peak} RSS on request. */
async function child(socket: string, dir: string, budget: number): Promise<void> {
  const { Runtime } = await import('../agent/runtime/runtime.js');
  const { createApiServer } = await import('../agent/api/server.js');
  const { servingRuntime } = await import('../agent/api/runtime-adapter.js');
  const { writeModelFolder } = await import('../test/fixtures/model-folder.js');
  const { silentLogger } = await import('../protocol/log.js');
  const runtime = new Runtime({ log: silentLogger });
  const folder = join(dir, 'model');
  await writeModelFolder(folder, 'classifier', { id: 'acme/classifier' });
  await runtime.activate('acme/classifier', 1, folder);
  const server = createApiServer({
    runtime: servingRuntime(runtime),
    log: silentLogger,
    limits: { maxBytesInFlight: budget, maxConcurrentPerModel: 16, maxBodyBytes: 64 * MB },
  });
  await server.listen(socket);
  global.gc?.();
  await new Promise((r) => setTimeout(r, 300));
  const idle = process.memoryUsage().rss;
  let peak = idle;
  setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 10).unref();
  process.on('message', (m) => {
    if (m === 'rss') process.send!({ idle, peak, now: process.memoryUsage().rss });
  });
  process.send!('ready');
}

async function measure(
  dir: string,
  budget: number,
  image: Buffer,
  rounds: number,
): Promise<{ idle: number; peak: number; after: number; ok: number; busy: number }> {
  const socket = join(dir, `agent-${budget}.sock`);
  const proc: ChildProcess = fork(fileURLToPath(import.meta.url), ['--child', socket, dir, String(budget)], {
    execArgv: [...SOURCE_CHILD_ARGS, '--expose-gc'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  try {
    await new Promise<void>((resolve, reject) => {
      proc.once('message', () => resolve());
      proc.once('exit', (code) => reject(new Error(`bench agent exited with ${code}`)));
    });
    const client = new AgentClient({ socket });
    let ok = 0;
    let busy = 0;
    for (let r = 0; r < rounds; r++) {
      const answers = await Promise.allSettled(
        Array.from({ length: 4 }, () => client.predict('acme/classifier', image)),
      );
      for (const a of answers) {
        if (a.status === 'fulfilled') ok++;
        else if ((a.reason as OutpostError).code === 'API_MEMORY_BUSY') busy++;
        else throw a.reason;
      }
    }
    const rss = await new Promise<{ idle: number; peak: number; now: number }>((resolve) => {
      proc.once('message', (m) => resolve(m as { idle: number; peak: number; now: number }));
      proc.send('rss');
    });
    return { idle: rss.idle, peak: rss.peak, after: rss.now, ok, busy };
  } finally {
    proc.kill('SIGKILL');
  }
}

export async function run(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-burst-'));
  try {
    // A flat colour compresses like the 187 KB PNGs: small on the wire, 192 MB decoded.
    const image = await sharp({
      create: { width: 8000, height: 8000, channels: 3, background: { r: 90, g: 140, b: 200 } },
    })
      .png()
      .toBuffer();
    const rounds = Number(process.env.OUTPOST_BENCH_ROUNDS ?? 3);
    const off = await measure(dir, Number.MAX_SAFE_INTEGER, image, rounds);
    const on = await measure(dir, DEFAULT_LIMITS.maxBytesInFlight, image, rounds);
    const grow = (m: typeof on) => (m.peak - m.idle) / MB;
    const note = (m: typeof on) =>
      `idle ${(m.idle / MB).toFixed(0)} MB, peak ${(m.peak / MB).toFixed(0)} MB, after ${(m.after / MB).toFixed(0)} MB; ${m.ok} ok, ${m.busy} x 503 API_MEMORY_BUSY`;
    return [
      {
        name: `4 x 8000x8000 PNG (${(image.length / 1024).toFixed(0)} KB) at once, ${rounds} rounds, budget off`,
        metric: 'peak RSS over idle, MB',
        ours: grow(off),
        note: note(off),
      },
      {
        name: `the same with api.maxBytesInFlight = ${DEFAULT_LIMITS.maxBytesInFlight / MB} MiB`,
        metric: 'peak RSS over idle, MB',
        ours: grow(on),
        baseline: grow(off),
        baselineName: 'budget off',
        ratio: grow(on) / grow(off),
        note: note(on),
      },
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child') {
  const [socket, dir, budget] = process.argv.slice(3);
  await child(socket, dir, Number(budget));
}
