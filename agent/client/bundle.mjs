// Builds the clients that apps on the device use, as the device package ships them
// (dist/agent-client/, imported as `outpost-agent/client`; .ci/pack.mjs). Part of `npm run build`.
//
//   index.js, index.cjs          the TypeScript client (agent/client/index.ts and what it imports
//                                of protocol/), one self-contained file each for ES modules and
//                                CommonJS: an app's bundler or node resolves nothing else of ours
//   types/                       its declarations (tsc), so a TypeScript app type-checks against
//                                the very signatures it calls
//   python/outpost_client.py     the Python client, one file, standard library only
//   examples/                    the example apps: predict-frames.js (the TypeScript one, bundled
//                                with the client) and predict_frames.py (finds ../python itself)
//
// Why a separate build and not the agent's bundle: an app imports the client into its own
// process, and the agent's bundle is CommonJS chunks split for the daemon's start-up; the client
// is small (no dependency outside node's built-ins) and wants both module systems.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.join(HERE, '..', '..');
export const CLIENT_DIR = path.join(ROOT, 'dist', 'agent-client');

const COMMON = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  legalComments: 'none',
  logLevel: 'warning',
};

export async function bundleClient(outDir = CLIENT_DIR) {
  const tmp = `${outDir}.${process.pid}.tmp`;
  fs.rmSync(tmp, { recursive: true, force: true });
  const entry = path.join(HERE, 'index.ts');
  await build({ ...COMMON, entryPoints: [entry], format: 'esm', outfile: path.join(tmp, 'index.js') });
  await build({ ...COMMON, entryPoints: [entry], format: 'cjs', outfile: path.join(tmp, 'index.cjs') });
  await build({
    ...COMMON,
    entryPoints: [path.join(HERE, 'examples', 'predict-frames.ts')],
    format: 'esm',
    outfile: path.join(tmp, 'examples', 'predict-frames.js'),
  });
  declarations(entry, path.join(tmp, 'types'));
  fs.mkdirSync(path.join(tmp, 'python'), { recursive: true });
  fs.copyFileSync(path.join(HERE, 'python', 'outpost_client.py'), path.join(tmp, 'python', 'outpost_client.py'));
  fs.copyFileSync(path.join(HERE, 'examples', 'predict_frames.py'), path.join(tmp, 'examples', 'predict_frames.py'));
  fs.rmSync(outDir, { recursive: true, force: true });
  fs.renameSync(tmp, outDir);
}

/**
 * The client's .d.ts files (and those of the protocol types it exports), from the sources, with
 * the repository's own compiler options (a throwaway tsconfig extending tsconfig.json).
 */
function declarations(entry, outDir) {
  const tsc = createRequire(path.join(ROOT, 'package.json')).resolve('typescript/bin/tsc');
  const project = path.join(path.dirname(outDir), 'tsconfig.declarations.json');
  fs.writeFileSync(
    project,
    JSON.stringify({
      extends: path.join(ROOT, 'tsconfig.json'),
      compilerOptions: { noEmit: false, declaration: true, emitDeclarationOnly: true, rootDir: ROOT, outDir },
      files: [entry],
      include: [],
    }),
  );
  try {
    execFileSync(process.execPath, [tsc, '-p', project], { cwd: ROOT, stdio: 'inherit' });
  } finally {
    fs.rmSync(project, { force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const t0 = performance.now();
  await bundleClient();
  const kb = fs.statSync(path.join(CLIENT_DIR, 'index.js')).size / 1024;
  console.log(
    `client bundled into dist/agent-client: ${kb.toFixed(0)} KB, in ${Math.round(performance.now() - t0)} ms`,
  );
}
