/**
 * `npm run bench -- fuzz [--runs=N] [--seed=S]`: the long mode of the parse* fuzzing
 * (test/fuzz/parsers.ts; CI runs 300 inputs per boundary with a fixed seed in
 * test/unit/fuzz-parsers.test.ts). Default 20,000 inputs per boundary and a random seed, printed
 * so that a failure can be replayed with --seed. A failing boundary's row shows its counterexample.
 */
import { checkTarget, FUZZ_TARGETS } from '../test/fuzz/parsers.js';
import type { BenchRow } from './run.js';

function flag(name: string, fallback: number): number {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? Number(a.slice(name.length + 3)) : fallback;
}

export async function run(): Promise<BenchRow[]> {
  const runs = flag('runs', 20_000);
  const seed = flag('seed', Math.floor(Math.random() * 2 ** 31));
  const rows: BenchRow[] = [];
  for (const t of FUZZ_TARGETS) {
    const started = process.hrtime.bigint();
    let note = `seed ${seed}: 0 failures`;
    let failures = 0;
    try {
      checkTarget(t, { numRuns: runs, seed });
    } catch (err) {
      failures = 1;
      note = `seed ${seed}: ${(err as Error).message.split('\n').slice(0, 3).join(' ').slice(0, 300)}`;
    }
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    rows.push({
      name: `${t.name} x ${runs}`,
      metric: 'failures',
      ours: failures,
      note: `${note}; ${((ms / runs) * 1000).toFixed(1)} us/input`,
    });
  }
  return rows;
}
