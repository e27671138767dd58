import { describe, it } from 'vitest';
import { checkTarget, FUZZ_TARGETS } from '../fuzz/parsers.js';

/**
 * Property-based fuzzing of every parse* boundary (test/fuzz/parsers.ts) with a fixed seed, so CI
 * runs the same inputs every time and a failure names a reproducible counterexample. The long
 * mode with many more runs and random seeds is `npm run bench -- fuzz`.
 */
const SEED = 20261101;

describe('parse* boundaries return a value or an OutpostError, never another throw', () => {
  for (const t of FUZZ_TARGETS) {
    it(t.name, () => checkTarget(t, { numRuns: 300, seed: SEED }));
  }
});
