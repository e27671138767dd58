#!/usr/bin/env node
// Builds the native addons with cmake-js (`npm run build:addons` in the repository, the install
// script of the outpost-agent package on a device): node addons/build.mjs [--out DIR]
//
// Two things this adds over a bare `cmake-js compile`:
// - It configures every time. cmake-js only configures when the build folder has no
//   CMakeCache.txt, so an SDK installed after the first build (apt-get install libopencv-dev,
//   JetPack's TensorRT) was never looked for again: the build said "no work to do". Configuring
//   is enough, because CMake searches again for every package whose cached answer is -NOTFOUND
//   (test/integration/addon-rebuild.test.ts proves it in one build folder).
// - A failure never fails the install: the agent runs without the addons that did not build and
//   reports each one's reason. The one line printed here says so.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkgRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const i = process.argv.indexOf('--out');
const out = resolve(pkgRoot, i > 0 && process.argv[i + 1] ? process.argv[i + 1] : join('build', 'addons'));

function cmakeJs(verb) {
  let bin;
  try {
    bin = join(dirname(createRequire(join(pkgRoot, 'package.json')).resolve('cmake-js/package.json')), 'bin', 'cmake-js');
  } catch {
    return 'cmake-js is not installed';
  }
  const r = spawnSync(process.execPath, [bin, verb, '--out', out], { cwd: pkgRoot, stdio: 'inherit' });
  if (r.error) return r.error.message;
  return r.status === 0 ? null : `cmake-js ${verb} exited ${r.status ?? r.signal}`;
}

const problem = cmakeJs('configure') ?? cmakeJs('build');
if (problem) {
  console.log(`outpost: native addons not built (${problem}; see the lines above); the agent runs without them`);
}
