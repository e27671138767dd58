// Bundles the device agent (agent/cli/bin.ts and everything it imports, protocol/ included) into a
// few ES module files in dist/agent-bundle/: bin.js, and one chunk per part that loads later (each
// verb, the sync side after READY, each backend), so `import()` keeps loading them lazily. Part
// of `npm run build`; what the device package ships (.ci/pack.mjs). Why: node resolves, reads and
// compiles one file per module, and the agent is ~170 modules of its own plus ~200 of its
// dependencies; one file per phase starts faster and holds less code in memory
// (docs/packaging.md, "The device bundle").
//
// Bundled: the agent's and protocol's code and the pure-JavaScript dependencies (pino, mqtt,
// @tufjs/models). Left outside, resolved from node_modules at run time: what carries a native
// library (onnxruntime-node, sharp, unix-dgram, the Outpost addons loaded by path) and the
// optional native helpers of ws. Source maps are written beside the bundle (node uses them only
// with --enable-source-maps); the packages do not ship them. The third-party licences of what
// is bundled go to THIRD-PARTY-NOTICES.txt next to it.
import { build } from 'esbuild';
import fs from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
export const BUNDLE_DIR = path.join(ROOT, 'dist', 'agent-bundle');

/** Imported at run time from node_modules, never bundled (the device package depends on them). */
export const EXTERNAL = ['onnxruntime-node', 'sharp', 'unix-dgram'];
/** ws's optional native speed-ups: absent on a device, and ws handles that itself. */
const OPTIONAL = ['bufferutil', 'utf-8-validate'];

// The CommonJS stage's files learn their own URL from __filename (what import.meta.url was).
const CJS_BANNER = '"use strict";var __outpostUrl=require("node:url").pathToFileURL(__filename).href;';

/** Options both stages share. */
const COMMON = {
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  legalComments: 'none',
  // Whitespace and syntax only: identifiers keep their names, so a stack trace still names
  // the functions. The sources are held in memory as strings; this makes them a third smaller.
  minifyWhitespace: true,
  minifySyntax: true,
  logLevel: 'warning',
};

export async function bundleAgent(outDir = BUNDLE_DIR) {
  const tmp = `${outDir}.${process.pid}.tmp`;
  const esm = `${outDir}.${process.pid}.esm`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.rmSync(esm, { recursive: true, force: true });
  // Stage 1: one ES module graph split at every import() (esbuild splits ES modules only).
  const result = await build({
    ...COMMON,
    entryPoints: { bin: path.join(ROOT, 'agent', 'cli', 'bin.ts') },
    bundle: true,
    splitting: true,
    format: 'esm',
    outdir: esm,
    chunkNames: 'chunks/[name]-[hash]',
    external: [...EXTERNAL, ...OPTIONAL],
    metafile: true,
  });
  // Stage 2: each file to CommonJS, import() to a lazy require(): node 20 has a code cache for
  // CommonJS only (agent/system/compile-cache.ts), and a require() costs less than an ES module's
  // resolve-load-link. The source maps of stage 1 are read in, so the maps still point at the
  // TypeScript sources.
  const files = Object.keys(result.metafile.outputs).filter((f) => f.endsWith('.js'));
  await build({
    ...COMMON,
    entryPoints: files,
    outbase: esm,
    outdir: tmp,
    bundle: false,
    format: 'cjs',
    supported: { 'dynamic-import': false },
    define: { 'import.meta.url': '__outpostUrl' },
    banner: { js: CJS_BANNER },
  });
  fs.rmSync(esm, { recursive: true, force: true });
  checkCommonJs(tmp);
  // The package's own package.json says "type": "module"; this folder is CommonJS.
  fs.writeFileSync(path.join(tmp, 'package.json'), '{ "type": "commonjs" }\n');
  fs.writeFileSync(path.join(tmp, 'THIRD-PARTY-NOTICES.txt'), notices(result.metafile));
  fs.writeFileSync(path.join(tmp, 'meta.json'), JSON.stringify(packagesOf(result.metafile), null, 2) + '\n');
  swapIn(tmp, outDir);
  return result.metafile;
}

/**
 * Fails the build when an output file kept an import() or import.meta: inside a CommonJS file
 * compiled through vm.Script (the compile cache) they would fail at run time.
 */
function checkCommonJs(dir) {
  for (const f of fs.readdirSync(dir, { recursive: true })) {
    if (!f.endsWith('.js')) continue;
    const src = fs.readFileSync(path.join(dir, f), 'utf8');
    const m = /\bimport\s*\(|\bimport\.meta\b/.exec(src);
    if (m) throw new Error(`agent/bundle.mjs: ${f} still has "${m[0]}" after the CommonJS stage`);
  }
}

/**
 * Replaces `outDir` with `tmp` as a whole, so a process starting from the bundle never sees half
 * of two builds (the chunk names carry content hashes). Two builds at once: the last one wins.
 */
function swapIn(tmp, outDir) {
  for (let attempt = 0; ; attempt++) {
    const old = `${outDir}.${process.pid}.${attempt}.old`;
    try {
      if (fs.existsSync(outDir)) fs.renameSync(outDir, old);
      fs.renameSync(tmp, outDir);
      fs.rmSync(old, { recursive: true, force: true });
      return;
    } catch (err) {
      fs.rmSync(old, { recursive: true, force: true });
      if (attempt >= 5) throw err;
    }
  }
}

/**
 * The npm packages the bundle imports at run time (`external`: what the device package must
 * depend on; ws's optional helpers are required inside a try) and those it carries (`bundled`).
 * test/unit/packaging.test.ts compares both with .ci/pack.mjs and the sources.
 */
function packagesOf(metafile) {
  const names = new Set();
  const builtin = new Set(builtinModules);
  for (const out of Object.values(metafile.outputs)) {
    for (const imp of out.imports) {
      if (!imp.external || imp.path.startsWith('node:') || builtin.has(imp.path) || OPTIONAL.includes(imp.path))
        continue;
      const parts = imp.path.split('/');
      names.add(imp.path.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]);
    }
  }
  const bundled = new Set();
  for (const input of Object.keys(metafile.inputs)) {
    const m = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m) bundled.add(m[1]);
  }
  return { external: [...names].sort(), bundled: [...bundled].sort() };
}

/** The licence text of every npm package with code in the bundle. */
function notices(metafile) {
  const pkgs = new Map();
  for (const input of Object.keys(metafile.inputs)) {
    const m = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (!m) continue;
    const dir = path.join(ROOT, input.slice(0, m.index + m[0].length));
    if (pkgs.has(dir)) continue;
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
    const file = fs.readdirSync(dir).find((f) => /^(licen[cs]e|copying)(\.|$)/i.test(f));
    pkgs.set(dir, {
      name: `${pkg.name}@${pkg.version}`,
      license: pkg.license,
      text: file ? fs.readFileSync(path.join(dir, file), 'utf8') : '',
    });
  }
  const list = [...pkgs.values()].sort((a, b) => a.name.localeCompare(b.name));
  return [
    'Third-party software bundled into the Outpost device agent (dist/agent-bundle/).',
    '',
    ...list.map(
      (p) =>
        `${'='.repeat(78)}\n${p.name} (${p.license ?? 'see text'})\n\n${p.text.trim() || '(no licence file in the package)'}\n`,
    ),
  ].join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const t0 = performance.now();
  const meta = await bundleAgent();
  const outs = Object.entries(meta.outputs).filter(([f]) => f.endsWith('.js'));
  const kb = outs.reduce((n, [, o]) => n + o.bytes, 0) / 1024;
  console.log(
    `agent bundled into dist/agent-bundle: ${outs.length} files, ${kb.toFixed(0)} KB, in ${Math.round(performance.now() - t0)} ms`,
  );
}
