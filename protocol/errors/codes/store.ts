import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/** Codes of the models folder on the device (install, journal, rollback). */
export const STORE = {
} as const satisfies ErrorTable;
