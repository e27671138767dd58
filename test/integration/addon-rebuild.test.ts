import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOpenCvBackend } from '../../agent/runtime/backends/opencv.js';
import type { OpenCvBinding } from '../../agent/runtime/backends/opencv-binding.js';
import { loadAddon } from '../../agent/runtime/backends/native-loader.js';
import { buildNet, reference, sampleInput } from '../fixtures/caffe/nets.js';
import { missingCommand, skipForPackage } from '../helpers/requires.js';
import { agreement, writeNet } from './addon-model-dirs.js';

/**
 * `npm run build:addons` finds an SDK installed after the first build, in the same build folder.
 *
 * The first build runs in a private mount namespace (`unshare -m`) where an empty tmpfs covers
 * OpenCV's CMake package folder (`.../cmake/opencv4`, which libopencv-dev installs), so CMake sees
 * a machine without OpenCV: nothing is edited in the cache or in the project, and the machine's
 * OpenCV is untouched outside that one child. The second build, in the same folder, sees OpenCV
 * again, as after `apt-get install libopencv-dev`. Before addons/build.mjs configured every time,
 * that second build was cmake-js's "ninja: no work to do" and the addon never appeared.
 */
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const ADDON = 'outpost_opencv_dnn';

/** OpenCV's CMake package folders (where find_package(OpenCV) finds OpenCVConfig.cmake). */
function openCvPackageDirs(): string[] {
  const libs = ['/usr/lib', '/usr/local/lib'];
  for (const d of readdirSync('/usr/lib', { withFileTypes: true })) {
    if (d.isDirectory() && /-linux-gnu/.test(d.name)) libs.push(join('/usr/lib', d.name));
  }
  return libs.map((l) => join(l, 'cmake', 'opencv4')).filter((d) => existsSync(join(d, 'OpenCVConfig.cmake')));
}

const hidden = openCvPackageDirs();
const hideScript = (cmd: string) =>
  `${hidden.map((d) => `mount -t tmpfs outpost-no-opencv ${d}`).join(' && ')} && ${cmd}`;

function missingPrerequisite(): string | null {
  const cmake = missingCommand('cmake');
  if (cmake) return cmake;
  if (hidden.length === 0) return 'OpenCV is not installed (apt-get install libopencv-dev)';
  // The namespace must be able to mount: util-linux's unshare needs CAP_SYS_ADMIN (CI runs as root).
  const probe = spawnSync(
    'unshare',
    ['-m', 'sh', '-c', hideScript(`test ! -e ${join(hidden[0]!, 'OpenCVConfig.cmake')}`)],
    {
      encoding: 'utf8',
    },
  );
  if (probe.error || probe.status !== 0) {
    return `cannot hide OpenCV in a private mount namespace (unshare -m, mount -t tmpfs): ${probe.error?.message ?? (probe.stderr.trim() || `exit ${probe.status}`)}`;
  }
  return null;
}

/** Runs `npm run build:addons`'s script with --out; returns its exit code and everything it printed. */
function buildAddons(out: string, withoutOpenCv: boolean): { status: number | null; output: string } {
  const node = `${JSON.stringify(process.execPath)} addons/build.mjs --out ${JSON.stringify(out)}`;
  const r = withoutOpenCv
    ? spawnSync('unshare', ['-m', 'sh', '-c', hideScript(`exec ${node}`)], { cwd: REPO, encoding: 'utf8' })
    : spawnSync(process.execPath, ['addons/build.mjs', '--out', out], { cwd: REPO, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}\n${r.stderr}` };
}

const cachedOpenCvDir = (out: string) =>
  /^OpenCV_DIR:PATH=(.*)$/m.exec(readFileSync(join(out, 'CMakeCache.txt'), 'utf8'))?.[1];

describe.skipIf(skipForPackage(missingPrerequisite()))('build:addons after an SDK is installed', () => {
  let root: string;
  let out: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'outpost-addon-rebuild-'));
    out = join(root, 'build');
  });
  afterAll(async () => rm(root, { recursive: true, force: true }));

  it('skips the OpenCV addon with its reason while OpenCV is absent, and the install still succeeds', () => {
    const first = buildAddons(out, true);
    expect(first.status, first.output).toBe(0);
    expect(first.output).toContain(
      'outpost: skipping the OpenCV DNN addon: OpenCV with the dnn module not found (apt-get install libopencv-dev)',
    );
    expect(first.output).toMatch(/outpost: addons built: [^\n]*; skipped: [^\n]*opencv-dnn/);
    expect(existsSync(join(out, 'Release', `${ADDON}.node`))).toBe(false);
    // The state the bug was about: a configured build folder whose cache remembers the miss.
    expect(cachedOpenCvDir(out)).toBe('OpenCV_DIR-NOTFOUND');
  }, 180_000);

  it('builds it in the same build folder once OpenCV is there, and the addon runs a net', async () => {
    expect(existsSync(join(out, 'CMakeCache.txt'))).toBe(true);
    const second = buildAddons(out, false);
    expect(second.status, second.output).toBe(0);
    expect(second.output).toMatch(/outpost: addons built: opencv-dnn \(OpenCV \d+\.\d+/);
    expect(cachedOpenCvDir(out)).toBe(hidden[0]);

    const binding = loadAddon<OpenCvBinding>(ADDON, [join(out, 'Release')]);
    expect(binding.ok, binding.ok ? '' : binding.reason).toBe(true);
    if (!binding.ok) return;
    expect(binding.path).toBe(join(out, 'Release', `${ADDON}.node`));
    expect(binding.binding.buildInfo().version).toMatch(/^\d+\.\d+/);

    // A real cv::dnn run through the backend over the freshly built binding.
    const backend = createOpenCvBackend({ binding });
    expect((await backend.availability()).available).toBe(true);
    const net = buildNet('classifier');
    const [w, h] = net.size;
    const model = await backend.load(await writeNet(root, net, 'caffe'));
    try {
      const input = sampleInput(net, 3);
      const o = await model.run({ data: { dtype: 'float32', shape: [1, 3, h, w], data: input } });
      const got = o[model.outputs[0]!.name]!.data as Float32Array;
      expect(agreement(got, reference(net, input), 1e-4)).toBeLessThanOrEqual(1e-5);
    } finally {
      await model.dispose();
    }
  }, 180_000);
});
