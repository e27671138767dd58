import { createInterface } from 'node:readline';
import { request } from 'node:http';
import { chmod, copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PYTHON } from '../helpers/python.js';
import { missingCommand, skipForPackage } from '../helpers/requires.js';
import { fakeRoot, verify } from '../helpers/systemd-root.js';
import { waitFor } from '../helpers/fleet.js';
import { NOT_ON_DEVICE, lastJson, outsideEnv, procView, runTo, startChild, type Ran } from '../helpers/installed.js';

/**
 * The packages as a user gets them: `npm run pack` in the repository, then each tarball installed
 * with `npm install --omit=dev` into its own empty prefix in a temp folder (no repository on any
 * path: node resolves nothing from here), and only the INSTALLED binaries used from then on:
 * `outpost cloud start`, `outpost model configure|publish`, `outpost device provision`,
 * `outpost-agent run` converging to a deployment, `outpost-agent predict` answering from its
 * socket, `outpost-agent install-service` writing units that `systemd-analyze verify` accepts.
 * It also shows that the installed agent loads no transpiler. Everything started is stopped by PID.
 */
const REPO = fileURLToPath(new URL('../..', import.meta.url));
/** Budgets of the slow steps: packing (tsc, the bundles, npm pack) and each npm install. */
const PACK_MS = 300_000;
const INSTALL_MS = 600_000;
const noVerify = missingCommand('systemd-analyze');
const skipPython = skipForPackage(missingCommand(PYTHON) && `${PYTHON} not found (apt-get install python3)`);
const skipVerify = skipForPackage(noVerify && `${noVerify} (apt-get install systemd)`);

let dir: string;
let cloudPrefix: string;
let agentPrefix: string;
let version: string;
const stops: (() => Promise<unknown>)[] = [];

// A short root: the agent's socket lives under it (Unix socket paths stop at 107 bytes).
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'op-inst-'));
  cloudPrefix = join(dir, 'cloud');
  agentPrefix = join(dir, 'device');
  version = (JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
});
afterAll(async () => {
  for (const stop of stops.reverse()) await stop().catch(() => {});
  await rm(dir, { recursive: true, force: true });
});

// HOME stays the user's: npm reads its ~/.npmrc (nodedir for node-gyp's headers, the cache) as
// for any install. Nothing of the repository's .npmrc applies: cwd is the empty prefix.
const env = () =>
  outsideEnv({
    // onnxruntime-node's postinstall fetches GPU providers from a feed build machines cannot reach.
    ONNXRUNTIME_NODE_INSTALL: 'skip',
    OUTPOST_DATA_DIR: join(dir, 'cloud-data'),
    OUTPOST_LOG_LEVEL: 'warn',
  });
const bin = (prefix: string, name: string) => join(prefix, 'node_modules', '.bin', name);
const outpost = (args: string[], cwd = dir) =>
  runTo(bin(cloudPrefix, 'outpost'), args, { cwd, env: env(), timeoutMs: 60_000 });
const agentCli = (args: string[]) =>
  runTo(bin(agentPrefix, 'outpost-agent'), args, { cwd: dir, env: env(), timeoutMs: 60_000 });

function npmInstall(prefix: string, tgz: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<Ran> {
  return mkdir(prefix, { recursive: true }).then(() =>
    runTo(
      'npm',
      ['install', '--prefix', prefix, '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline', '--no-save', tgz],
      { cwd: prefix, env: { ...env(), ...extraEnv }, timeoutMs: INSTALL_MS },
    ),
  );
}

function installed(r: Ran, tgz: string): void {
  expect(r.code, `npm install ${tgz}:\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-3000)}`).toBe(0);
}

/**
 * better-sqlite3's install script (prebuild-install) downloads a prebuilt binary for this Node ABI
 * from its GitHub releases, which is what a user's `npm install` gets; only when that fails does it
 * compile SQLite from source (minutes on a loaded 2-core machine, the one slow step of this test).
 * Build machines here cannot reach GitHub, so the same prebuilt file is offered from a local folder
 * through prebuild-install's own option (npm_config_better_sqlite3_local_prebuilds; README,
 * "Installing without access to GitHub"): a tarball of the binary the repository's `npm ci` built
 * for this very version and ABI. It is a binary, not a path into the repository: the installed
 * package resolves nothing from here.
 */
async function betterSqlitePrebuilds(into: string): Promise<NodeJS.ProcessEnv> {
  const pkgFile = createRequire(join(REPO, 'package.json')).resolve('better-sqlite3/package.json');
  const pkg = JSON.parse(await readFile(pkgFile, 'utf8')) as { version: string };
  const stage = join(into, 'stage');
  await mkdir(join(stage, 'build', 'Release'), { recursive: true });
  await copyFile(
    join(pkgFile, '..', 'build', 'Release', 'better_sqlite3.node'),
    join(stage, 'build/Release/better_sqlite3.node'),
  );
  const name = `better-sqlite3-v${pkg.version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
  const tar = await runTo('tar', ['-czf', join(into, name), '-C', stage, 'build/Release/better_sqlite3.node'], {
    cwd: into,
    env: process.env,
    timeoutMs: 60_000,
  });
  expect(tar.code, tar.stderr).toBe(0);
  await rm(stage, { recursive: true, force: true });
  return { npm_config_better_sqlite3_local_prebuilds: into };
}

async function names(folder: string): Promise<string[]> {
  return (await readdir(folder).catch(() => [] as string[])).sort();
}

/** GET over the agent's Unix socket (no client library of the repository). */
function getJson(socketPath: string, path: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET' }, (res) => {
      let body = '';
      res.on('data', (b: Buffer) => (body += b.toString()));
      res.on('end', () => {
        try {
          resolve(JSON.parse(body) as Record<string, unknown>);
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * What an app on the device uses, from the installed package only: the TypeScript client as
 * `outpost-agent/client` (ES module and CommonJS, resolved by node from the prefix), the Python
 * client and both example apps, each predicting the red image through the agent's socket.
 */
async function appsOnTheDevice(socket: string, png: string): Promise<void> {
  const pkg = join(agentPrefix, 'node_modules', 'outpost-agent');
  const predict = `const a = new AgentClient({ socket: ${JSON.stringify(socket)} });
    const r = await a.predict('admin/colors', readFileSync(${JSON.stringify(png)}));
    console.log(JSON.stringify({ ready: (await a.health()).ready, label: r.predictions[0]?.label })); a.close();`;
  const esm = await runTo(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { AgentClient } from 'outpost-agent/client'; import { readFileSync } from 'node:fs'; ${predict}`,
    ],
    { cwd: agentPrefix, env: env(), timeoutMs: 60_000 },
  );
  expect(esm.code, esm.stderr).toBe(0);
  expect(JSON.parse(esm.stdout)).toEqual({ ready: true, label: 'red' });
  const cjs = await runTo(
    process.execPath,
    [
      '-e',
      `const { AgentClient } = require('outpost-agent/client'); const { readFileSync } = require('node:fs'); (async () => { ${predict} })();`,
    ],
    { cwd: agentPrefix, env: env(), timeoutMs: 60_000 },
  );
  expect(cjs.code, cjs.stderr).toBe(0);
  expect(JSON.parse(cjs.stdout)).toEqual({ ready: true, label: 'red' });
  // A TypeScript app type-checks against the shipped declarations (the repository's tsc, as the
  // app's own would be; the package resolves through its exports' "types" condition).
  const app = join(agentPrefix, 'app.ts');
  await writeFile(
    app,
    `import { AgentClient, type PredictAnswer } from 'outpost-agent/client';
     const a: AgentClient = new AgentClient({ socket: '/run/outpost/agent.sock' });
     export const p: Promise<PredictAnswer> = a.predict('acme/net', new Uint8Array(0));
     // @ts-expect-error: the model name is a string
     a.infer(42, {});`,
  );
  const tsc = await runTo(
    process.execPath,
    [join(REPO, 'node_modules/typescript/bin/tsc'), '--noEmit', '--strict', '--module', 'nodenext', app].concat([
      '--typeRoots',
      join(REPO, 'node_modules/@types'),
      '--types',
      'node',
    ]),
    { cwd: agentPrefix, env: env(), timeoutMs: 120_000 },
  );
  expect(tsc.code, tsc.stdout + tsc.stderr).toBe(0);

  if (!skipPython) {
    const py = await runTo(
      PYTHON,
      [
        '-c',
        `import json, sys; sys.path.insert(0, ${JSON.stringify(join(pkg, 'dist', 'agent-client', 'python'))})
import outpost_client as oc
c = oc.Client(${JSON.stringify(socket)})
r = c.predict('admin/colors', open(${JSON.stringify(png)}, 'rb').read())
print(json.dumps({'ready': c.ready(), 'label': r['predictions'][0]['label']}))`,
      ],
      { cwd: dir, env: env(), timeoutMs: 60_000 },
    );
    expect(py.code, py.stderr).toBe(0);
    expect(JSON.parse(py.stdout)).toEqual({ ready: true, label: 'red' });
  }
  const frames = await mkdtemp(join(dir, 'frames-'));
  await copyFile(png, join(frames, 'red.png'));
  const examples = join(pkg, 'dist', 'agent-client', 'examples');
  const args = ['--model', 'admin/colors', '--folder', frames, '--socket', socket];
  const runs = [[process.execPath, join(examples, 'predict-frames.js')]];
  if (!skipPython) runs.push([PYTHON, join(examples, 'predict_frames.py')]);
  for (const [cmd, file] of runs) {
    const r = await runTo(cmd!, [file!, ...args], { cwd: dir, env: env(), timeoutMs: 60_000 });
    expect(r.code, `${file}: ${r.stderr}`).toBe(0);
    expect(r.stdout.split('\n')[0]?.split('\t')).toEqual([
      'red.png',
      expect.any(String),
      expect.stringMatching(/^red /),
    ]);
  }
}

describe('installed packages (npm run pack, npm install --omit=dev, no repository)', () => {
  // The two installs run at once (both are mostly native compiles: unix-dgram and the OpenCV addon
  // on the device side, the native modules of the cloud side) and are awaited by one test each, so
  // a slow one fails only its own test, with its own budget.
  let agentInstall: Promise<Ran>;
  let cloudInstall: Promise<Ran>;
  const agentTgz = () => join(REPO, 'dist', 'packages', `outpost-agent-${version}.tgz`);
  const cloudTgz = () => join(REPO, 'dist', 'packages', `outpost-${version}.tgz`);

  it(
    'npm run pack writes both tarballs',
    async () => {
      const packed = await runTo('npm', ['run', '-s', 'pack'], { cwd: REPO, env: outsideEnv(), timeoutMs: PACK_MS });
      expect(packed.code, packed.stdout + packed.stderr).toBe(0);
      const prebuilds = await betterSqlitePrebuilds(await mkdtemp(join(dir, 'prebuilds-')));
      agentInstall = npmInstall(agentPrefix, agentTgz());
      cloudInstall = npmInstall(cloudPrefix, cloudTgz(), prebuilds);
      // Settled here too, so that a test that never awaits one (skipped, failed) leaves no rejection.
      void agentInstall.catch(() => {});
      void cloudInstall.catch(() => {});
    },
    PACK_MS + 60_000,
  );

  it(
    'outpost-agent installs into an empty prefix with only what a device needs',
    async () => {
      expect(agentInstall, 'the pack test did not start the install').toBeDefined();
      installed(await agentInstall, agentTgz());
      const device = join(agentPrefix, 'node_modules');
      expect(await names(join(device, 'outpost-agent'))).toEqual(
        expect.arrayContaining(['README.md', 'addons', 'dist', 'package.json', 'systemd']),
      );
      // Neither package carries the repository's tests, benchmarks, CI or sources (the cloud's below).
      for (const absent of ['test', 'bench', '.ci', 'docs', 'tsconfig.json'])
        expect(await names(join(device, 'outpost-agent'))).not.toContain(absent);
      // The agent is one bundle (agent/bundle.mjs): no per-module tree, no source maps; beside it
      // only the apps' clients (agent/client/bundle.mjs).
      expect(await names(join(device, 'outpost-agent', 'dist'))).toEqual(['agent-bundle', 'agent-client']);
      const shipped = await names(join(device, 'outpost-agent', 'dist', 'agent-bundle'));
      expect(shipped).toEqual(expect.arrayContaining(['THIRD-PARTY-NOTICES.txt', 'bin.js', 'chunks']));
      expect(
        (await names(join(device, 'outpost-agent', 'dist', 'agent-bundle', 'chunks'))).filter(
          (f) => !f.endsWith('.js'),
        ),
      ).toEqual([]);
      // The device gets nothing of the cloud, the transpiler or the test tools, and not the pure-JS
      // dependencies the bundle carries (mqtt, pino, @tufjs/models): only what has native code.
      const agentPkg = JSON.parse(await readFile(join(device, 'outpost-agent', 'package.json'), 'utf8')) as {
        dependencies: Record<string, string>;
      };
      const onDevice = await names(device);
      for (const cloudOnly of NOT_ON_DEVICE) {
        expect(agentPkg.dependencies, cloudOnly).not.toHaveProperty(cloudOnly);
        expect(onDevice, cloudOnly).not.toContain(cloudOnly);
      }
      expect(onDevice).toEqual(expect.arrayContaining(['onnxruntime-node', 'sharp', 'unix-dgram']));
      for (const bundled of ['mqtt', 'pino', '@tufjs']) expect(onDevice, bundled).not.toContain(bundled);

      const v = await agentCli(['--version']);
      expect(v.code, `outpost-agent --version: ${v.stderr}`).toBe(0);
      expect(v.stdout.trim()).toBe(version);
      const help = await agentCli(['--help']);
      for (const verb of ['run', 'status', 'check-config', 'install-service', 'predict', '--version']) {
        expect(help.stdout).toContain(`outpost-agent ${verb}`);
      }
    },
    INSTALL_MS + 60_000,
  );

  it(
    'outpost installs into an empty prefix, without the transpiler',
    async () => {
      expect(cloudInstall, 'the pack test did not start the install').toBeDefined();
      installed(await cloudInstall, cloudTgz());
      const pkg = join(cloudPrefix, 'node_modules', 'outpost');
      for (const absent of ['test', 'bench', '.ci', 'docs', 'tsconfig.json'])
        expect(await names(pkg)).not.toContain(absent);
      expect(await names(join(cloudPrefix, 'node_modules'))).not.toContain('tsx');
      const v = await outpost(['--version']);
      expect(v.code, `outpost --version: ${v.stderr}`).toBe(0);
      expect(v.stdout.trim()).toBe(version);
    },
    INSTALL_MS + 60_000,
  );

  it('outpost cloud start, publish, provision; outpost-agent run converges and answers a prediction, with no transpiler loaded', async () => {
    const cloud = startChild(bin(cloudPrefix, 'outpost'), ['cloud', 'start', '--http-port', '0', '--json'], {
      cwd: dir,
      env: env(),
    });
    stops.push(cloud.stop);
    const info = await new Promise<{ http: string }>((resolve, reject) => {
      createInterface({ input: cloud.child.stdout! }).once('line', (l) => resolve(JSON.parse(l)));
      cloud.child.once('close', () => reject(new Error(`cloud start exited: ${cloud.output()}`)));
    });
    expect(info.http).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    // The demo's generated classifier and red image, made by the INSTALLED package's own modules.
    const model = join(dir, 'model');
    await mkdir(model);
    const demo = join(cloudPrefix, 'node_modules', 'outpost', 'dist', 'cloud-broker', 'demo');
    const gen = await runTo(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `import { writeFileSync } from 'node:fs';
         import { colorClassifierOnnx, COLOR_LABELS } from ${JSON.stringify(join(demo, 'color-classifier.js'))};
         import { DEMO_MODEL_SIZE } from ${JSON.stringify(join(demo, 'model-folder.js'))};
         import { redSquarePng } from ${JSON.stringify(join(demo, 'image.js'))};
         writeFileSync('model.onnx', colorClassifierOnnx(DEMO_MODEL_SIZE));
         writeFileSync('labels.txt', COLOR_LABELS.join('\\n') + '\\n');
         writeFileSync('../red.png', await redSquarePng());`,
      ],
      { cwd: model, env: env(), timeoutMs: 60_000 },
    );
    expect(gen.code, gen.stderr).toBe(0);
    const configure = await outpost(
      ['model', 'configure', '--framework', 'onnx', '--purpose', 'Classification', '--model_file', 'model.onnx']
        .concat(['--label_file', 'labels.txt', '--size', '32x32', '--scalefactor', String(1 / 255), '--swaprb', 'true'])
        .concat(['--softmax', 'true', '--json']),
      model,
    );
    expect(configure.code, configure.stdout + configure.stderr).toBe(0);
    const manifestFile = join(model, 'alwaysai.model.json');
    const manifest = JSON.parse(await readFile(manifestFile, 'utf8')) as Record<string, unknown>;
    await writeFile(manifestFile, JSON.stringify({ ...manifest, id: 'admin/colors' }));
    const published = lastJson(await outpost(['model', 'publish', '--json'], model));
    expect(published).toMatchObject({ id: 'admin/colors', version: 1 });

    const deviceDir = join(dir, 'dev');
    const provisioned = lastJson(await outpost(['device', 'provision', 'cam-1', '--out', deviceDir, '--json']));
    const agentConfig = provisioned.agentConfig as string;

    const socket = join(dir, 'agent.sock');
    const agent = startChild(
      bin(agentPrefix, 'outpost-agent'),
      ['run', '--config', agentConfig, '--models-dir', join(dir, 'models'), '--socket', socket],
      { cwd: dir, env: env() },
    );
    stops.push(agent.stop);
    const meta = await waitFor('the agent socket', () => getJson(socket, '/v2'), 60_000);
    expect(meta.version).toBe(version);

    // No transpiler in the installed agent: plain node running the compiled bin, no loader flags,
    // no esbuild service child (tsx keeps one beside the process it runs).
    const view = await procView(agent.pid);
    expect(view.argv[0]).toMatch(/(^|\/)node$/);
    expect(view.argv[1]).toBe(bin(agentPrefix, 'outpost-agent'));
    for (const arg of view.argv) expect(arg).not.toMatch(/^--(import|loader|experimental-loader|require)\b|^-r$|tsx/);
    expect(view.env.filter((e) => e.startsWith('NODE_OPTIONS='))).toEqual([]);
    expect(view.children.filter((c) => c.argv.join(' ').includes('esbuild'))).toEqual([]);
    const maps = await readFile(`/proc/${agent.pid}/maps`, 'utf8');
    expect(maps).not.toMatch(/esbuild|tsx/);

    expect((await outpost(['deploy', 'admin/colors@1', '--device', 'cam-1', '--json'])).code).toBe(0);
    await waitFor(
      'cam-1 to report admin/colors@1 active',
      async () => {
        // The reported state (what the cloud sees), as the agent's status carries it.
        const s = lastJson(await agentCli(['status', '--socket', socket, '--json']));
        const m = (s.sync?.models as { id: string; activeVersion: number | null; state: string }[] | undefined)?.find(
          (x) => x.id === 'admin/colors',
        );
        return m?.state === 'active' && m.activeVersion === 1;
      },
      120_000,
    );
    const answer = lastJson(
      await agentCli(['predict', join(dir, 'red.png'), '--model', 'admin/colors', '--socket', socket, '--json']),
    );
    expect((answer.predictions as { label: string }[])[0]?.label).toBe('red');
    await appsOnTheDevice(socket, join(dir, 'red.png'));
    // The reported state carries the installed package's version too.
    const shown = await waitFor(
      'the reported state',
      async () => {
        const d = lastJson(await outpost(['device', 'show', 'cam-1', '--json']));
        return JSON.stringify(d).includes(`"agentVersion":"${version}"`) ? d : undefined;
      },
      30_000,
    );
    expect(shown).toBeTruthy();

    expect(await agent.stop()).toBe(0);
    expect(await cloud.stop()).toBe(0);
  }, 300_000);

  it.skipIf(skipVerify)(
    'outpost-agent install-service writes units whose ExecStart is the installed binary, and verify accepts them',
    async () => {
      const config = join(dir, 'dev', 'agent.json');
      const root = join(dir, 'image');
      const r = await agentCli(['install-service', '--config', config, '--root', root, '--no-start', '--json']);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const installedBin = bin(agentPrefix, 'outpost-agent');
      expect(lastJson(r).bin).toBe(installedBin);
      const unitFile = join(root, 'etc/systemd/system/outpost-agent.service');
      const unit = await readFile(unitFile, 'utf8');
      expect(unit).toContain(`ExecStart=${installedBin} run --config /etc/outpost/agent.json`);
      // verify checks that ExecStart's binary exists in that root; it never runs it, so a stand-in
      // at the same path is enough there (the real one answered --version above).
      await fakeRoot(root);
      await mkdir(join(root, installedBin, '..'), { recursive: true });
      await copyFile(join(root, 'usr/bin/outpost'), join(root, installedBin));
      await chmod(join(root, installedBin), 0o755);
      expect(await verify(root, [unitFile])).toEqual([]);
    },
    120_000,
  );
});
