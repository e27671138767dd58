/**
 * `npm run bench` measures the JavaScript that ships: registered after tsx (package.json's bench
 * script, and every bench child that runs TypeScript: SOURCE_CHILD_ARGS in bench/_compiled.ts),
 * it builds once (`npm run build`, incremental) and then resolves every module of agent/,
 * protocol/ and cloud-broker/ to its compiled file in dist/, the same tsc output the packages are
 * made from. The bench files themselves and the test fixtures they borrow stay under tsx.
 *
 * Why: tsx compiles with esbuild's keepNames, which wraps every function it creates in a
 * `__name(fn, "...")` call that defines the function's name property; per-request closures on
 * the agent's and the client's hot paths paid it on every request (the V8 profile of the bench
 * agent showed `__name` among the agent's own frames). The device runs dist/ with plain node.
 *
 * OUTPOST_BENCH_SOURCE=1 runs the TypeScript sources under tsx instead (no build), for a quick
 * look at a change before it is built.
 */
import { execFileSync } from 'node:child_process';
import { register } from 'node:module';
import { fileURLToPath } from 'node:url';

if (process.env.OUTPOST_BENCH_SOURCE !== '1') {
  // One build per bench run: the children this process starts inherit the variable, and the
  // footprint benches' ensureBuilt() (bench/_compiled.ts) reads it instead of building again.
  if (process.env.OUTPOST_BENCH_BUILT !== '1') {
    execFileSync('npm', ['run', '-s', 'build'], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    process.env.OUTPOST_BENCH_BUILT = '1';
  }
  register('./_dist-resolve.mjs', import.meta.url);
}
