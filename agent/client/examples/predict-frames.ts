/**
 * Example app (TypeScript client): reads frames, predicts, prints each result and then FPS and
 * latency. Frames are the JPEG/PNG files of a folder (sorted by name), or a video decoded by
 * ffmpeg (when installed) into raw BGR frames that go to the agent without any encode.
 *
 *   node --import tsx agent/client/examples/predict-frames.ts --model acme/net --folder ./frames
 *   node --import tsx agent/client/examples/predict-frames.ts --model acme/net --video cam.mp4 --size 640x360
 *   options: --socket PATH (default $OUTPOST_SOCKET or /run/outpost/agent.sock), --limit N
 */
import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { AgentClient, type PredictAnswer } from '../index.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    folder: { type: 'string' },
    video: { type: 'string' },
    size: { type: 'string', default: '640x360' },
    socket: { type: 'string' },
    limit: { type: 'string' },
  },
});
if (!args.model || (!args.folder && !args.video)) {
  console.error('usage: predict-frames --model owner/name (--folder DIR | --video FILE [--size WxH]) [--socket PATH]');
  process.exit(2);
}
const limit = args.limit ? Number(args.limit) : Infinity;
const agent = new AgentClient(args.socket ? { socket: args.socket } : {});

/** Frames of a video as raw BGR, read from ffmpeg's stdout one frame-size chunk at a time. */
async function* videoFrames(file: string, width: number, height: number): AsyncGenerator<Uint8Array> {
  const ff = spawn(
    'ffmpeg',
    [
      '-loglevel',
      'error',
      '-i',
      file,
      '-vf',
      `scale=${width}:${height}`,
      '-f',
      'rawvideo',
      '-pix_fmt',
      'bgr24',
      'pipe:1',
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const size = width * height * 3;
  let buf = Buffer.alloc(0);
  try {
    for await (const chunk of ff.stdout) {
      buf = Buffer.concat([buf, chunk as Buffer]);
      while (buf.length >= size) {
        yield buf.subarray(0, size);
        buf = buf.subarray(size);
      }
    }
  } finally {
    ff.kill();
  }
}

function summary(p: PredictAnswer): string {
  const preds = (p.predictions ?? []) as { label?: string; confidence?: number }[];
  const top = preds.slice(0, 3).map((x) => `${x.label ?? '?'} ${(x.confidence ?? 0).toFixed(2)}`);
  return top.length ? top.join(', ') : `${p.purpose ?? 'result'}`;
}

const latencies: number[] = [];
const started = performance.now();
let n = 0;
async function one(name: string, call: () => Promise<PredictAnswer>): Promise<void> {
  const t0 = performance.now();
  const result = await call();
  const ms = performance.now() - t0;
  latencies.push(ms);
  console.log(`${name}\t${ms.toFixed(1)} ms\t${summary(result)}`);
}

if (args.folder) {
  const files = (await readdir(args.folder)).filter((f) => /\.(jpe?g|png)$/i.test(f)).sort();
  for (const f of files) {
    if (n++ >= limit) break;
    const bytes = await readFile(join(args.folder, f));
    await one(f, () => agent.predict(args.model!, bytes));
  }
} else {
  const [width, height] = args.size!.split('x').map(Number) as [number, number];
  for await (const data of videoFrames(args.video!, width, height)) {
    if (n++ >= limit) break;
    await one(`frame ${n}`, () => agent.predictFrame(args.model!, { width, height, format: 'bgr', data }));
  }
}
agent.close();
const seconds = (performance.now() - started) / 1000;
latencies.sort((a, b) => a - b);
const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? 0;
console.log(
  `frames ${latencies.length}  fps ${(latencies.length / seconds).toFixed(1)}  latency p50 ${pct(50).toFixed(1)} ms  p99 ${pct(99).toFixed(1)} ms`,
);
