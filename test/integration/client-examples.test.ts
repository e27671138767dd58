import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeJpeg, encodePng, rectsImage } from '../fixtures/images.js';
import { PYTHON } from '../helpers/python.js';
import { missingCommand, skipForPackage } from '../helpers/requires.js';
import { startAgent, type Harness } from './api-harness.js';

/**
 * The example apps of agent/client/examples, run as users run them against a real agent on a
 * folder of three frames (red, blue, red): each prints one line per frame with the predicted
 * label, then frames, FPS and latency. With ffmpeg installed, both also read a short video.
 */
const run = promisify(execFile);
let h: Harness;
let folder: string;
beforeAll(async () => {
  h = await startAgent({ kinds: ['classifier'] });
  folder = join(h.dir, 'frames');
  await mkdir(folder);
  await writeFile(join(folder, '1.jpg'), await encodeJpeg(rectsImage(64, 48, [250, 10, 10], [])));
  await writeFile(join(folder, '2.png'), await encodePng(rectsImage(64, 48, [10, 10, 250], [])));
  await writeFile(join(folder, '3.png'), await encodePng(rectsImage(64, 48, [250, 10, 10], [])));
  await writeFile(join(folder, 'notes.txt'), 'not a frame');
});
afterAll(async () => {
  await h?.close();
});

function check(stdout: string): void {
  const lines = stdout.trim().split('\n');
  expect(lines.slice(0, 3).map((l) => l.split('\t')[0])).toEqual(['1.jpg', '2.png', '3.png']);
  expect(lines.slice(0, 3).map((l) => l.split('\t')[2]!.split(' ')[0])).toEqual(['red', 'blue', 'red']);
  expect(lines[3]).toMatch(/^frames 3 {2}fps \d+(\.\d)? {2}latency p50 \d+\.\d ms {2}p99 \d+\.\d ms$/);
}

const TS = ['--import', 'tsx', 'agent/client/examples/predict-frames.ts'];
const PY = ['agent/client/examples/predict_frames.py'];
const opts = (...source: string[]) => ['--model', 'acme/classifier', ...source, '--socket', h.socket];

describe('example apps on a folder of frames', () => {
  it('TypeScript: agent/client/examples/predict-frames.ts', async () => {
    check((await run(process.execPath, [...TS, ...opts('--folder', folder)])).stdout);
  });

  it.skipIf(skipForPackage(missingCommand(PYTHON)))('Python: agent/client/examples/predict_frames.py', async () => {
    check((await run(PYTHON, [...PY, ...opts('--folder', folder)])).stdout);
  });
});

describe.skipIf(skipForPackage(missingCommand('ffmpeg', ['-version'])))(
  'example apps on a video through ffmpeg',
  () => {
    it('both decode a short clip into raw frames and predict each', async () => {
      const clip = join(h.dir, 'clip.mp4');
      await run('ffmpeg', ['-loglevel', 'error', '-f', 'lavfi', '-i', 'color=c=red:s=64x48:d=0.2', '-r', '10', clip]);
      const video = opts('--video', clip, '--size', '64x48');
      for (const out of [
        (await run(process.execPath, [...TS, ...video])).stdout,
        (await run(PYTHON, [...PY, ...video])).stdout,
      ]) {
        // The encoder decides how many frames a 0.2 s clip holds; every one of them must be red.
        const total = Number(/^frames (\d+) {2}fps/m.exec(out)?.[1]);
        expect(total).toBeGreaterThanOrEqual(1);
        expect(out.match(/^frame \d+\t.*\tred/gm)?.length).toBe(total);
      }
    });
  },
);
