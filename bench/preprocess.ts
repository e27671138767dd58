import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { blobFromFrame, decodeImage } from '../agent/runtime/preprocess.js';
import { pythonWithCv2 } from '../test/fixtures/cv2/python.js';
import { encodeJpeg, noiseImage } from '../test/fixtures/images.js';
import type { BenchRow } from './run.js';

/**
 * Pre-processing of a 1280x720 JPEG to 300x300: Outpost (sharp decode + TypeScript
 * blobFromImage) against cv2.imread + cv2.dnn.blobFromImage (python3-opencv).
 *
 * Like with like: the same file, read from disk on both sides each iteration; the same call
 * (size, mean, scalefactor 1, swapRB false, crop false) and the same output (1x3x300x300
 * float32, NCHW); both warmed up; cv2 timed inside Python, so interpreter start is not counted.
 * The two sides alternate in ROUNDS rounds so that a change in the machine's load hits both;
 * each round's figure is the median ms per image, and the row gives the median round ratio with
 * the range. The last cv2 blob is compared with Outpost's: the decoders (sharp's libjpeg-turbo
 * fork, Debian's libjpeg-turbo) may differ by a level, the resize by one more (the tolerance of
 * test/integration/runtime-preprocess-cv2.test.ts).
 */
const N = 20;
const ROUNDS = 5;

const PY = `
import cv2, sys, time
path, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def once():
    return cv2.dnn.blobFromImage(cv2.imread(path), 1.0, (300, 300), (104, 117, 123), False, False)
for _ in range(5): once()
ts = []
cpu = time.process_time()
for _ in range(n):
    t = time.perf_counter(); blob = once(); ts.append((time.perf_counter() - t) * 1000)
cpu = (time.process_time() - cpu) * 1000 / n
ts.sort()
blob.astype('float32').tofile(out)
print(ts[len(ts) // 2], cpu)
`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function run(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'outpost-bench-pre-'));
  try {
    const file = join(dir, 'frame.jpg');
    await writeFile(file, await encodeJpeg(noiseImage(1280, 720, 11), 90));
    const params = {
      size: [300, 300] as [number, number],
      mean: [104, 117, 123] as [number, number, number],
      scalefactor: 1,
      swaprb: false,
      crop: false,
    };
    const ours = async () => blobFromFrame(await decodeImage(await readFile(file)), params).tensor.data as Float32Array;
    /** [median wall ms, mean CPU ms of all the process's threads] per image. */
    const oursRound = async (): Promise<[number, number]> => {
      const ts: number[] = [];
      const cpu = process.cpuUsage();
      for (let i = 0; i < N; i++) {
        const t = performance.now();
        await ours();
        ts.push(performance.now() - t);
      }
      const used = process.cpuUsage(cpu);
      return [median(ts), (used.user + used.system) / 1000 / N];
    };
    for (let i = 0; i < 5; i++) await ours(); // warm-up: sharp loaded, the kernel optimised
    const name = 'preprocess 1280x720 JPEG -> 300x300 (decode + blob)';
    const py = pythonWithCv2();
    if ('reason' in py) return [{ name, metric: 'p50 ms/image', ours: (await oursRound())[0], note: py.reason }];
    const cvOut = join(dir, 'cv2.f32');
    const oursMs: number[] = [];
    const cvMs: number[] = [];
    const oursCpu: number[] = [];
    const cvCpu: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const [wall, cpu] = await oursRound();
      oursMs.push(wall);
      oursCpu.push(cpu);
      const [cvWall, cvCpuMs] = execFileSync(py.python, ['-c', PY, file, String(N), cvOut])
        .toString()
        .trim()
        .split(' ');
      cvMs.push(Number(cvWall));
      cvCpu.push(Number(cvCpuMs));
    }
    const ratios = oursMs.map((o, i) => o / cvMs[i]!);
    const cpuRatios = oursCpu.map((o, i) => o / cvCpu[i]!);
    const range = (xs: number[]) => `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}`;
    const a = await ours();
    const b = new Float32Array((await readFile(cvOut)).buffer.slice(0));
    let maxDiff = 0;
    for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!));
    return [
      {
        name,
        metric: 'p50 ms/image',
        ours: median(oursMs),
        baseline: median(cvMs),
        baselineName: 'cv2.imread+blobFromImage',
        ratio: median(ratios),
        note: `median of ${ROUNDS} alternating rounds (range ${range(ratios)}); goal <= 0.8; max |blob - cv2 blob| ${maxDiff} levels`,
      },
      {
        name: 'preprocess, CPU time (all threads of each process)',
        metric: 'CPU ms/image',
        ours: median(oursCpu),
        baseline: median(cvCpu),
        baselineName: 'cv2',
        ratio: median(cpuRatios),
        note: `median of ${ROUNDS} rounds (range ${range(cpuRatios)}); what a shared 2-core device pays, less swayed by load`,
      },
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const row of await run()) console.log(JSON.stringify(row));
}
