import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missingCommand, skipForPackage } from '../helpers/requires.js';

/**
 * `npm run build:addons` (addons/build.mjs) finds an SDK installed after the first build. The
 * first build runs with OpenCV hidden from CMake (CMAKE_IGNORE_PREFIX_PATH=/usr, as on a machine
 * without libopencv-dev), so CMake caches OpenCV_DIR-NOTFOUND; then the "install" (the hiding
 * entry leaves the cache) and a rebuild in the same folder. The plain cmake-js build, which is
 * what `cmake-js compile` did before, is shown to miss it, so the check can fail.
 */
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const CMAKE_JS = join(REPO, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
const OPENCV = '/usr/lib/x86_64-linux-gnu/cmake/opencv4/OpenCVConfig.cmake';
const noCmake = missingCommand('cmake');
const skip = skipForPackage(
  noCmake ?? (existsSync(OPENCV) ? null : `OpenCV's CMake config is not at ${OPENCV} (apt-get install libopencv-dev)`),
);

let out: string;
beforeAll(async () => {
  out = await mkdtemp(join(tmpdir(), 'outpost-addons-'));
});
afterAll(async () => {
  await rm(out, { recursive: true, force: true });
});

function run(args: string[]): { code: number | null; text: string } {
  const r = spawnSync(process.execPath, args, { cwd: REPO, encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, text: `${r.stdout}${r.stderr}` };
}
const built = () => existsSync(join(out, 'Release', 'outpost_opencv_dnn.node'));

describe.skipIf(skip)('npm run build:addons after an SDK is installed', () => {
  it('finds OpenCV on the next run in the same build folder, where a plain cmake-js build does not', async () => {
    const first = run([CMAKE_JS, 'configure', '--out', out, '--CDCMAKE_IGNORE_PREFIX_PATH=/usr']);
    expect(first.code, first.text).toBe(0);
    expect(first.text).toContain('skipping the OpenCV DNN addon');
    const cacheFile = join(out, 'CMakeCache.txt');
    const cache = await readFile(cacheFile, 'utf8');
    expect(cache).toMatch(/^OpenCV_DIR:PATH=OpenCV_DIR-NOTFOUND$/m);

    // "apt-get install libopencv-dev": OpenCV is no longer hidden from CMake.
    await writeFile(
      cacheFile,
      cache
        .split('\n')
        .filter((l) => !l.startsWith('CMAKE_IGNORE_PREFIX_PATH'))
        .join('\n'),
    );
    const plain = run([CMAKE_JS, 'build', '--out', out]);
    expect(plain.code, plain.text).toBe(0);
    expect(built()).toBe(false);

    const again = run([join(REPO, 'addons', 'build.mjs'), '--out', out]);
    expect(again.code, again.text).toBe(0);
    expect(again.text).toMatch(/addons built: opencv-dnn \(OpenCV \d/);
    expect(built()).toBe(true);
  }, 600_000);
});
