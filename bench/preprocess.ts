import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { blobFromFrame, decodeImage } from '../agent/runtime/preprocess.js';
import { encodeJpeg, noiseImage } from '../test/fixtures/images.js';
import type { BenchRow } from './run.js';

/**
 * Pre-processing of a 1280x720 JPEG to 300x300: Outpost (sharp decode + TypeScript
 * blobFromImage) against cv2.imread + cv2.dnn.blobFromImage (python3-opencv), both timed in
 * their own process over the same file, in the same run. Prints ms per image and the ratio.
 * Run: node --import tsx bench/preprocess.ts   (or via bench/run.ts, which calls run()).
 */
const N = 40;

export async function run(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-pre-'));
  try {
    const file = join(dir, 'frame.jpg');
    const jpeg = await encodeJpeg(noiseImage(1280, 720, 11), 90);
    await writeFile(file, jpeg);
    const params = {
      size: [300, 300] as [number, number],
      mean: [104, 117, 123] as [number, number, number],
      scalefactor: 1,
      swaprb: false,
      crop: false,
    };
    for (let i = 0; i < 5; i++) blobFromFrame(await decodeImage(jpeg), params); // warm-up
    const t0 = performance.now();
    for (let i = 0; i < N; i++) blobFromFrame(await decodeImage(jpeg), params);
    const outpostMs = (performance.now() - t0) / N;
    const py = ['python3', '/usr/bin/python3'].find((p) => {
      try {
        execFileSync(p, ['-c', 'import cv2'], { stdio: 'ignore' });
        return true;
      } catch {
        return false;
      }
    });
    const name = 'preprocess 1280x720 JPEG -> 300x300 (decode + blob)';
    if (!py) return [{ name, metric: 'ms/image', ours: outpostMs, note: 'python3-opencv missing: no baseline' }];
    const script = `import cv2,time\nfor _ in range(5): cv2.dnn.blobFromImage(cv2.imread(${JSON.stringify(file)}),1.0,(300,300),(104,117,123),False,False)\nt=time.perf_counter()\nfor _ in range(${N}): cv2.dnn.blobFromImage(cv2.imread(${JSON.stringify(file)}),1.0,(300,300),(104,117,123),False,False)\nprint((time.perf_counter()-t)*1000/${N})`;
    const cv2Ms = Number(execFileSync(py, ['-c', script]).toString().trim());
    return [
      {
        name,
        metric: 'ms/image',
        ours: outpostMs,
        baseline: cv2Ms,
        baselineName: 'cv2.imread+blobFromImage',
        ratio: outpostMs / cv2Ms,
        note: 'ratio < 1: Outpost faster',
      },
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const row of await run()) console.log(JSON.stringify(row));
}
