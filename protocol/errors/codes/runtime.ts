import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/** Codes of backends, pre- and post-processing, activation. */
export const RUNTIME = {
} as const satisfies ErrorTable;
