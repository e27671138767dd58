#!/usr/bin/env node
// `npm run pack`: the two installable tarballs, from the compiled dist/ (npm run build first).
//
//   dist/packages/outpost-agent-<version>.tgz   the device: the agent bundle (agent/bundle.mjs:
//                                               agent + protocol + their pure-JS dependencies),
//                                               the apps' clients (agent/client/bundle.mjs),
//                                               addon sources (built at install), systemd units
//   dist/packages/outpost-<version>.tgz         the cloud and the CLI of developers and operators:
//                                               protocol + agent + cloud-broker JS, systemd units
//
// Each package is assembled in a staging folder with its own package.json (dependencies picked
// from the root package.json, so versions stay those of the one lockfile) and a `files`
// allowlist, then `npm pack` writes the tarball. Plain Node ESM on purpose: packaging must not
// need the transpiler it is there to remove. Why one source tree and not npm workspaces:
// docs/packaging.md.
//
// `node .ci/pack.mjs --print-manifests` prints the two package.json files as JSON and packs
// nothing (test/unit/packaging.test.ts checks them against what the code imports).
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const root = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));

/**
 * What the agent bundle imports from node_modules at run time: the packages that carry a native
 * library, which the bundle leaves outside (agent/bundle.mjs EXTERNAL). The agent's other
 * dependencies (pino, mqtt, @tufjs/models) are inside the bundle. test/unit/packaging.test.ts
 * keeps this exact against the bundle and the sources.
 */
export const DEVICE_RUNTIME = ['onnxruntime-node', 'sharp', 'unix-dgram'];
/** What the device's install script needs to build the addons (cmake-js and the Node-API headers). */
export const ADDON_BUILD = ['cmake-js', 'node-addon-api', 'node-api-headers'];
/**
 * The cloud package carries every run-time dependency of the repository except the addon build:
 * it has no addon sources (a device installs outpost-agent), and the demo's agent runs on ONNX.
 */
const CLOUD_EXCLUDED = new Set(ADDON_BUILD);

// The same script as the root's build:addons: configures every time (an SDK installed later is
// found) and never fails the install (a missing SDK skips its addon with one line).
const BUILD_ADDONS = root.scripts['build:addons'];

/** The device package's one importable entry: the clients of agent/client/bundle.mjs. */
export const CLIENT_EXPORTS = {
  './client': {
    types: './dist/agent-client/types/agent/client/index.d.ts',
    import: './dist/agent-client/index.js',
    require: './dist/agent-client/index.cjs',
  },
  './package.json': './package.json',
};

function pick(names) {
  const out = {};
  for (const n of [...names].sort()) {
    const v = root.dependencies?.[n];
    if (!v) throw new Error(`.ci/pack.mjs: ${n} is not in the root package.json dependencies`);
    out[n] = v;
  }
  return out;
}

const common = {
  version: root.version,
  type: 'module',
  license: root.license,
  engines: root.engines,
};

export function manifests() {
  return {
    'outpost-agent': {
      name: 'outpost-agent',
      description:
        "Outpost's device agent: keeps this device's models in the state the cloud desires and serves them over a Unix socket.",
      ...common,
      // systemd, Unix datagram sockets for sd_notify, the accelerators' Linux SDKs.
      os: ['linux'],
      bin: { 'outpost-agent': 'dist/agent-bundle/bin.js' },
      // npm runs "install" after the dependencies are in place, so cmake-js and the headers resolve.
      scripts: { install: BUILD_ADDONS },
      binary: root.binary,
      dependencies: pick([...DEVICE_RUNTIME, ...ADDON_BUILD]),
      // Apps on the device import the client (`outpost-agent/client`); nothing else is importable.
      exports: CLIENT_EXPORTS,
      files: ['dist/agent-bundle/', 'dist/agent-client/', 'addons/', 'CMakeLists.txt', 'systemd/', 'README.md'],
    },
    outpost: {
      name: 'outpost',
      description: root.description,
      ...common,
      bin: { outpost: 'dist/cloud-broker/cli/bin.js' },
      dependencies: pick(Object.keys(root.dependencies).filter((n) => !CLOUD_EXCLUDED.has(n))),
      files: ['dist/agent/', 'dist/protocol/', 'dist/cloud-broker/', 'systemd/', 'README.md'],
    },
  };
}

/**
 * Copies a compiled tree without source maps (their sources are not shipped) or the bundle's
 * build record (meta.json, read by the packaging test).
 */
function copyDist(tree, stage) {
  const from = join(ROOT, 'dist', tree);
  if (!existsSync(from)) throw new Error(`.ci/pack.mjs: ${relative(ROOT, from)} is missing: run npm run build`);
  const skip = (src) => src.endsWith('.map') || src === join(from, 'meta.json');
  cpSync(from, join(stage, 'dist', tree), { recursive: true, filter: (src) => !skip(src) });
}

function stageAgent(stage, manifest) {
  copyDist('agent-bundle', stage);
  copyDist('agent-client', stage);
  cpSync(join(ROOT, 'addons'), join(stage, 'addons'), { recursive: true });
  cpSync(join(ROOT, 'CMakeLists.txt'), join(stage, 'CMakeLists.txt'));
  cpSync(join(ROOT, 'systemd'), join(stage, 'systemd'), { recursive: true });
  cpSync(join(ROOT, 'agent', 'README.md'), join(stage, 'README.md'));
  writeFileSync(join(stage, 'package.json'), JSON.stringify(manifest, null, 2) + '\n');
}

function stageCloud(stage, manifest) {
  for (const tree of ['protocol', 'agent', 'cloud-broker']) copyDist(tree, stage);
  cpSync(join(ROOT, 'systemd'), join(stage, 'systemd'), { recursive: true });
  cpSync(join(ROOT, 'README.md'), join(stage, 'README.md'));
  writeFileSync(join(stage, 'package.json'), JSON.stringify(manifest, null, 2) + '\n');
}

function main() {
  const m = manifests();
  if (process.argv.includes('--print-manifests')) {
    process.stdout.write(JSON.stringify(m, null, 2) + '\n');
    return;
  }
  const out = join(ROOT, 'dist', 'packages');
  mkdirSync(out, { recursive: true });
  for (const [name, stageFn] of [
    ['outpost-agent', stageAgent],
    ['outpost', stageCloud],
  ]) {
    const stage = join(out, `.stage-${name}`);
    rmSync(stage, { recursive: true, force: true });
    mkdirSync(stage, { recursive: true });
    stageFn(stage, m[name]);
    const [packed] = JSON.parse(
      execFileSync('npm', ['pack', stage, '--json', '--pack-destination', out], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      }),
    );
    rmSync(stage, { recursive: true, force: true });
    const mib = (packed.size / 2 ** 20).toFixed(2);
    process.stdout.write(`${relative(ROOT, join(out, packed.filename))}: ${packed.entryCount} files, ${mib} MiB\n`);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
