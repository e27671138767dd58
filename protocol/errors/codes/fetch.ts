import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/** Codes of downloads on the device (HTTP Range, verification). */
export const FETCH = {
} as const satisfies ErrorTable;
