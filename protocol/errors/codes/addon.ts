import { EXIT } from '../exit-codes.js';
import type { ErrorTable } from '../types.js';

/** Codes of the native addons. */
export const ADDON = {
} as const satisfies ErrorTable;
