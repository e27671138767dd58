import { expect } from 'vitest';
import { OutpostError } from '../../protocol/errors/index.js';

/**
 * The catalog code of the OutpostError that `fn` throws. The test fails when `fn` returns, or
 * throws anything that is not an OutpostError (a bare Error means a boundary forgot its code).
 */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(OutpostError);
    return (err as OutpostError).code;
  }
  throw new Error('expected a throw');
}

/** The same for a promise: the code it rejects with; the test fails when it resolves. */
export async function codeOfRejection(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(OutpostError);
    return (err as OutpostError).code;
  }
  throw new Error('expected a rejection');
}
