// Bundles the web page (cloud-broker/ui/app/) into the few static files the cloud serves at
// /ui/ (cloud-broker/ui/serve.ts): app.js (Preact + the page, minified), app.css, index.html and
// favicon.svg. Part of `npm run build`; tests call it when the bundle is missing or older than
// the sources. Each file is written to a temp name and renamed, so a build running beside a
// cloud that serves the folder (or beside another build) never exposes half a file.
import { build } from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const APP = path.join(HERE, 'app');
export const DEFAULT_OUT = path.join(HERE, '../../dist/cloud-broker/ui/static');

function writeAtomic(file, data) {
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

/** Builds into `outDir`; returns the files written with their sizes. */
export async function buildUi(outDir = DEFAULT_OUT) {
  fs.mkdirSync(outDir, { recursive: true });
  const result = await build({
    entryPoints: { app: path.join(APP, 'main.tsx'), 'app-css': path.join(APP, 'styles.css') },
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2020',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    legalComments: 'none',
    outdir: outDir,
    write: false,
    logLevel: 'warning',
  });
  const written = {};
  for (const f of result.outputFiles) {
    const name = path.basename(f.path) === 'app-css.css' ? 'app.css' : path.basename(f.path);
    writeAtomic(path.join(outDir, name), f.contents);
    written[name] = f.contents.length;
  }
  for (const name of ['index.html', 'favicon.svg']) {
    const data = fs.readFileSync(path.join(APP, name));
    writeAtomic(path.join(outDir, name), data);
    written[name] = data.length;
  }
  return written;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = process.argv[2] ? path.resolve(process.argv[2]) : DEFAULT_OUT;
  const files = await buildUi(out);
  const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
  console.log(
    `web page built into ${path.relative(process.cwd(), out) || out}: ${Object.entries(files)
      .map(([n, s]) => `${n} ${kb(s)}`)
      .join(', ')}`,
  );
}
