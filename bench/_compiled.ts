import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * The footprint benchmarks measure what a user runs: the JavaScript of `npm run build` with plain
 * node and no transpiler; for the agent, the bundle the device package ships (dist/agent-bundle/).
 * The build is incremental (~10 s when nothing changed) and runs once per bench run:
 * bench/_dist-hook.mjs builds before any bench loads and says so in OUTPOST_BENCH_BUILT, which
 * this honours; without the hook (OUTPOST_BENCH_SOURCE=1) it builds here, once per process.
 */
export const REPO = fileURLToPath(new URL('..', import.meta.url));
export const AGENT_BIN = join(REPO, 'dist', 'agent-bundle', 'bin.js');
export const OUTPOST_BIN = join(REPO, 'dist', 'cloud-broker', 'cli', 'bin.js');

let built = process.env.OUTPOST_BENCH_BUILT === '1';
export function ensureBuilt(): void {
  if (built) return;
  execFileSync('npm', ['run', '-s', 'build'], { cwd: REPO, stdio: ['ignore', 'ignore', 'inherit'] });
  built = true;
}

/**
 * Node flags for a bench child that runs TypeScript: tsx for the bench's own file, and the hook
 * that resolves the product's modules to their compiled dist/ files (bench/_dist-hook.mjs).
 */
export const SOURCE_CHILD_ARGS: readonly string[] = [
  '--import',
  'tsx',
  '--import',
  pathToFileURL(join(REPO, 'bench', '_dist-hook.mjs')).href,
];

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
