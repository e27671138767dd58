/** The resolve hook of bench/_dist-hook.mjs: a source module of the product becomes its dist/ file. */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const REPO = new URL('..', import.meta.url).href;
const ROOTS = ['agent/', 'protocol/', 'cloud-broker/'].map((r) => REPO + r);

export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (!r.url.endsWith('.ts') || !ROOTS.some((root) => r.url.startsWith(root))) return r;
  const dist = `${REPO}dist/${r.url.slice(REPO.length, -'.ts'.length)}.js`;
  // A file outside the build (cloud-broker/ui/app) keeps its source.
  return existsSync(fileURLToPath(dist)) ? { url: dist, format: 'module' } : r;
}
